"""`branchsync`, the branch executable: thin commands over the store and the sync engine.

Each command opens the store in the data home and calls one method. Sale entry works
with no network at all; only `enroll` and `sync` talk to the cloud.

    branchsync [--home DIR] enroll CODE [--force]
    branchsync [--home DIR] sale add SKU=QTY [SKU=QTY@PRICE ...] [--payment cash|card|mobile]
    branchsync [--home DIR] sale void NUMBER
    branchsync [--home DIR] sale list [--limit N]
    branchsync [--home DIR] sync
    branchsync [--home DIR] status [--json]
    branchsync [--home DIR] catalog search TEXT [--limit N]
    branchsync --version

The data home is --home DIR, else $BRANCHSYNC_HOME, else %PROGRAMDATA%\\branchsync on
Windows, else the user data directory (see branch_client.paths).

Exit codes:
    0  ok (for `sync`: everything due was pushed)
    1  sync or cloud failure, or another failure; nothing is lost, sales stay pending
    2  bad input (item, price, payment, void number, enrollment code); nothing was stored
    3  this data home is not enrolled
    4  a sync is already running (the second one exits at once)
Errors are one line on stderr saying what to do next. The secret is never printed.
"""

import json
import os
from importlib import metadata
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn
from rich.table import Table

from shared import PROTOCOL_VERSION
from shared.enrollment import decode_code
from shared.errors import ContractError
from shared.money import format_taka

from . import paths, sale_entry
from .cloud_client import CloudClient
from .errors import AlreadyEnrolled, BadEnrollmentCode, BranchSyncError
from .identity import Identity
from .store import SaleState, Store
from .sync import Progress as SyncProgress
from .sync import SyncEngine, SyncState

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_NOT_ENROLLED, EXIT_SYNC_RUNNING = 0, 1, 2, 3, 4

# Extra keyword arguments for every CloudClient the CLI makes (tests put a transport here).
client_options: dict = {}

app = typer.Typer(name="branchsync", no_args_is_help=True, add_completion=False,
                  help="Branch side of branchsync: record sales offline, sync them with head office.")
sale_app = typer.Typer(no_args_is_help=True, help="Record, void and list sales (works offline).")
catalog_app = typer.Typer(no_args_is_help=True, help="Look up products in the local catalog.")
app.add_typer(sale_app, name="sale")
app.add_typer(catalog_app, name="catalog")


def _out() -> Console:
    return Console(highlight=False)


def _err() -> Console:
    return Console(stderr=True, highlight=False)


def _version(value: bool) -> None:
    if value:
        try:
            version = metadata.version("branchsync")
        except metadata.PackageNotFoundError:  # a frozen build without metadata
            version = "unknown"
        typer.echo(f"branchsync {version} (protocol {PROTOCOL_VERSION})")
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
def _command(ctx: typer.Context) -> Iterator[Store]:
    """Open the store for one command; map errors to one line on stderr and an exit code."""
    try:
        with Store(ctx.obj) as store:
            yield store
    except BranchSyncError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except Exception as exc:
        if os.environ.get("BRANCHSYNC_DEBUG"):
            raise
        typer.echo(f"error: unexpected {type(exc).__name__}: {' '.join(str(exc).split())}", err=True)
        raise typer.Exit(EXIT_FAILURE) from None


# --- enroll ------------------------------------------------------------------------------------


@app.command()
def enroll(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(help="The enrollment code from head office (starts with BSE1.).")],
    force: Annotated[bool, typer.Option("--force", help="Replace the identity of an already enrolled home.")] = False,
) -> None:
    """Enroll this branch with the code head office gave you."""
    with _command(ctx) as store:
        try:
            parsed = decode_code(code)
        except ContractError as exc:
            raise BadEnrollmentCode(exc.message) from exc
        status = store.status()
        if status["enrolled"] and not force:
            raise AlreadyEnrolled(f"this home is already enrolled as branch {status['branch']} at {status['cloud_url']}; "
                                  "use --force to replace that identity")
        with CloudClient(parsed.url, **client_options) as client:
            answer = client.enroll(parsed.token)
        if status["branch"] and status["branch"] != answer.branch and status["sales_recorded"]:
            raise AlreadyEnrolled(
                f"this home holds {status['sales_recorded']} sales of branch {status['branch']} and the code is for "
                f"branch {answer.branch}; enroll {answer.branch} in its own home (--home DIR) with a new code")
        store.save_identity(Identity(branch=answer.branch, cloud_url=parsed.url, secret=answer.secret))
    typer.echo(f"enrolled as branch {answer.branch} at {parsed.url}")


# --- sales ---------------------------------------------------------------------------------------


@sale_app.command("add")
def sale_add(
    ctx: typer.Context,
    items: Annotated[list[str], typer.Argument(metavar="SKU=QTY[@PRICE]...",
                                               help="Items: SKU=QTY, or SKU=QTY@PRICE to override the price (taka).")],
    payment: Annotated[str, typer.Option("--payment", "-p", help="cash, card or mobile.")] = "cash",
) -> None:
    """Record a sale (works offline) and print its number and total."""
    with _command(ctx) as store:
        sale = store.record_sale(sale_entry.parse_items(items), payment)
    typer.echo(f"sale {sale.seq} recorded: total {format_taka(sale.total)} taka, "
               f"{len(sale.lines)} line{'s' if len(sale.lines) != 1 else ''}, paid by {sale.payment.method.value}")


@sale_app.command("void")
def sale_void(
    ctx: typer.Context,
    number: Annotated[int, typer.Argument(help="The number of the sale to void.")],
) -> None:
    """Void a sale: records a void event with minus its total."""
    with _command(ctx) as store:
        void = store.void_sale(number)
    typer.echo(f"sale {number} voided by number {void.seq}: {format_taka(void.total)} taka")


@sale_app.command("list")
def sale_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many recent events to show.")] = 20,
) -> None:
    """Recent sales and voids with their sync state (pending, pushed, acked)."""
    with _command(ctx) as store:
        records = store.recent_sales(limit)
    if not records:
        typer.echo("no sales recorded yet")
        return
    table = Table(title="Recent sales")
    for name, justify in (("No.", "right"), ("Time", "left"), ("Kind", "left"), ("Total (Tk)", "right"),
                          ("Payment", "left"), ("Sync", "left"), ("Note", "left")):
        table.add_column(name, justify=justify)
    colours = {SaleState.PENDING: "yellow", SaleState.PUSHED: "cyan", SaleState.ACKED: "green"}
    for rec in records:
        sale = rec.sale
        note = f"void of {sale.voids}" if sale.voids else (f"voided by {rec.voided_by}" if rec.voided_by else
                                                           f"{len(sale.lines)} lines")
        table.add_row(str(sale.seq), _local(sale.recorded_at), sale.kind.value, format_taka(sale.total),
                      sale.payment.method.value, f"[{colours[rec.state]}]{rec.state.value}[/]", escape(note))
    _out().print(table)


# --- sync ------------------------------------------------------------------------------------------


@app.command()
def sync(ctx: typer.Context) -> None:
    """Pull catalog and acknowledgements, then push new sales."""
    with _command(ctx) as store:
        identity = store.identity()
        with CloudClient.for_identity(identity, **client_options) as client, _progress_display() as show:
            report = SyncEngine(store, client, on_progress=show).run()
    typer.echo(f"sync done: catalog version {report.catalog_version} ({report.entries} changes"
               f"{', full resync' if report.full_resync else ''}), pushed {report.pushed} sales in "
               f"{report.messages} messages, {report.pending} awaiting acknowledgement")


@contextmanager
def _progress_display():
    console = _err()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                  console=console, disable=not console.is_terminal, transient=True) as bar:
        tasks: dict[SyncState, int] = {}

        def show(p: SyncProgress) -> None:
            if p.state not in (SyncState.PULLING, SyncState.PUSHING):
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
    with _command(ctx) as store:
        info = store.status()
    if as_json:
        typer.echo(json.dumps(info, ensure_ascii=False, indent=2))
        return
    table = Table(title="branchsync status", show_header=False)
    table.add_column("what")
    table.add_column("value")
    rows = [
        ("branch", info["branch"] or "[red]not enrolled[/]"),
        ("cloud", info["cloud_url"] or "-"),
        ("sales recorded", str(info["sales_recorded"])),
        ("pending (not acknowledged)", str(info["pending"])),
        ("  of which pushed", str(info["pushed_unacked"])),
        ("applied through", str(info["applied_through"])),
        ("catalog version", f"{info['catalog_version']} ({info['products']} products)"),
        ("last pull", info["last_pull"] or "never"),
        ("last push", info["last_push"] or "never"),
        ("last error", f"[red]{escape(info['last_error'])}[/] ({info['last_error_at']})" if info["last_error"] else "none"),
        ("data home", escape(info["home"])),
    ]
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


def _local(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def main() -> None:
    app(prog_name="branchsync")


if __name__ == "__main__":
    main()
