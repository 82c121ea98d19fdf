"""branchsync-admin: head office's command line for branches, catalog and sales.

Each command opens an AdminClient and makes one call (or one paged walk). The credential
is a person's, from BRANCHSYNC_CREDENTIAL (`people add` issues them), else the deployment's
admin key from BRANCHSYNC_ADMIN_KEY; neither is ever printed (`whoami` names who it is).

Exit codes: 0 ok, 1 the cloud refused or could not be reached, 2 bad input.
"""

import os
import sys
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress


from .admin_client import AdminClient, AdminError
from pydantic import TypeAdapter, ValidationError

from shared import limits
from shared.access import PersonCreate, Role
from shared.errors import shown
from shared.models import Sku, describe_errors

from .admin_tables import (
    audit_table, branches_table, dead_letters_table, people_table, price_differences_table, report_table,
)
from .catalog_csv import CatalogCsvError, parse_catalog_csv
from . import report_files, report_html
from .sales_rows import COLUMNS, sale_rows
from .spreadsheet import SafeWriter

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Manage branchsync branches, catalog and sales.")
branch_app = typer.Typer(no_args_is_help=True, help="Create branches, rotate their secrets, revoke them.")
catalog_app = typer.Typer(no_args_is_help=True, help="Change the catalog every branch pulls.")
sales_app = typer.Typer(no_args_is_help=True, help="Read the sales the cloud has applied.")
deadletter_app = typer.Typer(no_args_is_help=True, help="Queue messages the cloud refused: see why, replay or discard.")
report_app = typer.Typer(no_args_is_help=True, help="Reports on the applied sales.")
lake_app = typer.Typer(no_args_is_help=True, help="The data lake: the applied sales as Parquet files for BI tools.")
app.add_typer(branch_app, name="branch")
app.add_typer(catalog_app, name="catalog")
app.add_typer(sales_app, name="sales")
app.add_typer(deadletter_app, name="deadletter")
app.add_typer(report_app, name="report")
app.add_typer(lake_app, name="lake")
people_app = typer.Typer(no_args_is_help=True, help="Head-office people's credentials and their roles (admin only).")
app.add_typer(people_app, name="people")

err = Console(stderr=True)
IMPORT_CHUNK = 500


class ExportFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


class ReportFormat(StrEnum):
    table = "table"
    csv = "csv"
    jsonl = "jsonl"


class TableFormat(StrEnum):
    table = "table"
    csv = "csv"
    jsonl = "jsonl"
    xlsx = "xlsx"


class SalesBy(StrEnum):
    day = "day"
    branch = "branch"
    product = "product"
    payment = "payment"
    cashier = "cashier"
    vat = "vat"


DIFFERENCE_COLUMNS = ["branch", "seq", "line", "recorded_at", "sku", "name", "qty", "status", "sold_paisa",
                      "list_paisa", "current_paisa", "difference_paisa"]


@app.callback()
def main_options(
    ctx: typer.Context,
    url: Annotated[str, typer.Option(envvar="BRANCHSYNC_URL", help="Base URL of the cloud, e.g. https://app.azurewebsites.net")],
):
    key = os.environ.get("BRANCHSYNC_CREDENTIAL", "").strip() or os.environ.get("BRANCHSYNC_ADMIN_KEY", "")
    if not key.strip():
        err.print("[red]BRANCHSYNC_ADMIN_KEY is not set[/] (nor BRANCHSYNC_CREDENTIAL): export your head-office "
                  "credential as BRANCHSYNC_CREDENTIAL, or the admin key of this deployment, and try again")
        raise typer.Exit(2)
    ctx.obj = AdminClient(url, key)
    ctx.call_on_close(ctx.obj.close)


@branch_app.command("add")
def branch_add(ctx: typer.Context, name: str):
    """Register a branch and print its one-time enrollment code."""
    created = _run(ctx.obj.add_branch, name)
    err.print(f"Branch [bold]{created.branch}[/] created. On the branch PC run:  branchsync enroll <code>  "
              f"(the code works once, until {created.expires_at:%Y-%m-%d %H:%M} UTC)")
    print(created.enrollment_code)


@branch_app.command("rotate")
def branch_rotate(ctx: typer.Context, name: str):
    """Give a branch a new secret: it fetches it on its next sync, then the old one stops working."""
    rotation = _run(ctx.obj.rotate_branch, name)
    if rotation.already_pending:
        print(f"a new secret for {name} has been waiting since {rotation.requested_at:%Y-%m-%d %H:%M} UTC; "
              "it is taken up on the branch's next sync")
    else:
        print(f"new secret stored for {name}; the branch takes it up on its next sync "
              "('branchsync-admin branches' shows 'rotation pending' until then)")


@branch_app.command("revoke")
def branch_revoke(ctx: typer.Context, name: str):
    """Refuse a branch for good: its syncs fail and its messages still in the queue are dead-lettered."""
    revocation = _run(ctx.obj.revoke_branch, name)
    when = f"{revocation.revoked_at:%Y-%m-%d %H:%M} UTC"
    print(f"{name} was already revoked on {when}" if revocation.already_revoked else
          f"revoked {name} ({when}); its messages still in the queue go to the dead letters as branch_revoked")


@app.command("branches")
def branches(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False):
    """Every branch: last pull, last push, applied_through, last error."""
    listing = _run(ctx.obj.branches)
    if as_json:
        print(listing.model_dump_json(indent=2))
        return
    Console().print(branches_table(listing.branches))


@catalog_app.command("import")
def catalog_import(ctx: typer.Context, file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]):
    """Upsert products from a UTF-8 CSV (sku,name,price[,barcode,unit,vat_rate,active])."""
    try:
        products = parse_catalog_csv(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        err.print(f"[red]{file} is not UTF-8[/]: save it as 'CSV UTF-8' and import again; nothing was imported")
        raise typer.Exit(2)
    except CatalogCsvError as exc:
        for problem in exc.problems[:50]:
            err.print(f"[red]{file}[/] {problem}")
        if len(exc.problems) > 50:
            err.print(f"... and {len(exc.problems) - 50} more")
        err.print("Nothing was imported; fix the rows above and import again.")
        raise typer.Exit(2)
    results = []
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("importing", total=len(products))
        for i in range(0, len(products), IMPORT_CHUNK):
            chunk = products[i : i + IMPORT_CHUNK]
            results.append(_run(ctx.obj.import_products, chunk))
            progress.advance(task, len(chunk))
    print(import_summary(len(products), results))


def import_summary(count: int, results: list) -> str:
    """What an import changed. A chunk with nothing new writes no version (it reports the current one
    as first and last), so the range is taken from the chunks that wrote."""
    wrote = [r for r in results if r.written]
    changed = sum(r.written for r in wrote)
    if not wrote:
        at = results[-1].last_version if results else 0
        return f"imported {count} products: none changed (the catalog stays at version {at})"
    unchanged = f", {count - changed} unchanged" if count > changed else ""
    return (f"imported {count} products: {changed} changed (catalog versions {wrote[0].first_version}.."
            f"{wrote[-1].last_version}){unchanged}")


@catalog_app.command("delete")
def catalog_delete(
    ctx: typer.Context,
    skus: Annotated[Optional[list[str]], typer.Argument(metavar="SKU", help="SKUs to delete", show_default=False)] = None,
    file: Annotated[Optional[Path], typer.Option("--file", exists=True, dir_okay=False, readable=True,
                                                 help="A UTF-8 text file of SKUs to delete: one a line; blank lines "
                                                      "and # comments are ignored")] = None,
):
    """Delete products; branches receive a tombstone for each on their next pull.

    Many SKUs go to the cloud as one change per 500: if one of them is not in the catalog,
    none of that change is deleted. SKUs deleted already are skipped, so a list that
    stopped part-way can be run again as it is.
    """
    try:
        listed = parse_sku_list(skus or [], file.read_text(encoding="utf-8") if file else "", str(file or ""))
    except UnicodeDecodeError:
        err.print(f"[red]{file} is not UTF-8[/]: save it as UTF-8 text and delete again; nothing was deleted")
        raise typer.Exit(2)
    except SkuListError as exc:
        for problem in exc.problems[:50]:
            err.print(problem, style="red", markup=False)  # a SKU may hold [ ]
        if len(exc.problems) > 50:
            err.print(f"... and {len(exc.problems) - 50} more")
        err.print("Nothing was deleted; fix the SKUs above and delete again.")
        raise typer.Exit(2)
    if len(listed) == 1:  # the single DELETE, as always: every cloud version knows it
        result = _run(ctx.obj.delete_product, listed[0])
        print(f"deleted {listed[0]} (catalog version {result.last_version})")
        return
    results = []
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("deleting", total=len(listed))
        for i in range(0, len(listed), IMPORT_CHUNK):
            chunk = listed[i : i + IMPORT_CHUNK]
            try:
                results.append(ctx.obj.delete_products(chunk))
            except AdminError as exc:
                err.print(f"[red]error:[/] {escape(str(exc))}")
                err.print(delete_stopped(i, exc.code, results), markup=False)
                raise typer.Exit(1)
            progress.advance(task, len(chunk))
    print(delete_summary(len(listed), results))


class SkuListError(ValueError):
    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


_SKU = TypeAdapter(Sku)


def parse_sku_list(args: list[str], text: str, source: str) -> list[str]:
    """The SKUs named on the command line, then those of the file `text` (read from `source`).

    One SKU a line; blank lines and what follows a # are ignored (a SKU holds no #). Every
    SKU that is not valid or named twice is a problem, with where it stands; any problem
    means nothing is sent.
    """
    places = [(sku.strip(), f"argument {n}") for n, sku in enumerate(args, 1)]
    for n, line in enumerate(text.lstrip("\ufeff").splitlines(), 1):
        sku = line.split("#", 1)[0].strip()
        if sku:
            places.append((sku, f"{source} line {n}"))
    listed: list[str] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for sku, where in places:
        try:
            _SKU.validate_python(sku)
        except ValidationError:
            problems.append(f"{where}: {shown(sku)} is not a SKU (1 to {limits.SKU_MAX_CHARS} characters, "
                            "without spaces or / \\ # ?)")
            continue
        if sku in seen:
            problems.append(f"{where}: SKU {sku} is already named at {seen[sku]}")
            continue
        seen[sku] = where
        listed.append(sku)
    if problems:
        raise SkuListError(problems)
    if not listed:
        raise SkuListError(["no SKU to delete: name them, or give --file with one SKU a line"])
    return listed


def delete_summary(count: int, results: list) -> str:
    """What a delete of `count` SKUs did; a SKU deleted already writes no version."""
    wrote = [r for r in results if r.written]
    deleted = sum(r.written for r in wrote)
    if not wrote:
        at = results[-1].last_version if results else 0
        every = "it was" if count == 1 else f"all {count} were"
        return f"deleted no products: {every} deleted already (the catalog stays at version {at})"
    skipped = count - deleted
    already = f"; {skipped} {'was' if skipped == 1 else 'were'} deleted already" if skipped else ""
    first, last = wrote[0].first_version, wrote[-1].last_version
    versions = f"catalog version {last}" if first == last else f"catalog versions {first}..{last}"
    return f"deleted {deleted} product{'' if deleted == 1 else 's'} ({versions}){already}"


def delete_stopped(done: int, code: str | None, results: list) -> str:
    """What to do when the change of the list's SKUs from number `done` + 1 on was refused or failed."""
    again = "run the same delete again (SKUs deleted already are skipped)"
    first = "The first SKU of the list is" if done == 1 else f"The first {done} SKUs of the list are"
    before = f"{first} done: {delete_summary(done, results)}. " if done else ""
    if code == "not_found":  # the cloud wrote nothing of that change
        after = "" if not done else "after it " if done == 1 else "after them "
        return (f"{before}Nothing {after}was deleted: check the SKUs named above, leave out "
                f"those the catalog never had, and {again if done else 'delete again'}.")
    return f"{before}Once that is fixed, {again}."


@catalog_app.command("compact")
def catalog_compact(ctx: typer.Context):
    """Purge old tombstones and merge the catalog's storage now (the cloud also does it nightly).

    Safe at any time, also while branches sync: a branch that could have missed a purged
    delete is told to pull the whole catalog again.
    """
    result = _run(ctx.obj.compact_catalog)
    print(f"compacted the catalog: purged {result.purged} tombstones; a fresh pull now reads "
          f"{result.entries_after} entries (was {result.entries_before}) in {result.segments_after} segments "
          f"(was {result.segments_before}); catalog version {result.last_version}")


@lake_app.command("write")
def lake_write(
    ctx: typer.Context,
    day: Annotated[Optional[list[str]], typer.Option(help="Write this business day (YYYY-MM-DD) again even if "
                                                          "nothing changed; repeat for more days")] = None,
):
    """Write the business days that got sales since the last write now (the timer does it on its schedule).

    Safe at any time: a branch the timer is writing is left to it, and a day written again
    gives the same files.
    """
    for d in day or []:
        try:
            date.fromisoformat(d)
        except ValueError:
            err.print(f"[red]--day {d!r} is not a date[/]: give it as YYYY-MM-DD, e.g. --day 2026-11-28")
            raise typer.Exit(2)
    result = _run(ctx.obj.write_lake, day)
    print(f"lake written: {len(result.days)} business days of {result.branches} branches ({result.events} new events, "
          f"{result.files} files, {result.bytes} bytes)")
    for d in result.days:
        print(f"  {d.day} {d.branch}")
    if result.busy:
        print(f"being written by another run, left to it: {', '.join(result.busy)}")
    if result.more:
        print(f"more events than one write reads, run again for the rest: {', '.join(result.more)}")


@sales_app.command("export")
def sales_export(
    ctx: typer.Context,
    branch: Annotated[Optional[str], typer.Option(help="Only this branch")] = None,
    fmt: Annotated[ExportFormat, typer.Option("--format")] = ExportFormat.csv,
    output: Annotated[Optional[Path], typer.Option(help="Write here instead of standard output")] = None,
):
    """Every applied event with its branch, sale number, time, lines and total in paisa.

    jsonl: one applied event a line, in full. csv: a sale of the complete record one row per
    line (cashier, discounts, VAT, payments), a refund one row per returned line, older sales,
    voids and shift closes one row each (docs/protocol.md, "Sales export").
    """
    out = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout
    count = 0
    try:
        writer = _csv_writer(out) if fmt == ExportFormat.csv else None
        for applied in _run(lambda: list(ctx.obj.sales(branch))):
            if writer:
                for row in sale_rows(applied):
                    writer.writerow(row)
            else:
                out.write(applied.model_dump_json() + "\n")
            count += 1
    finally:
        if output:
            out.close()
    err.print(f"exported {count} sales" + (f" to {output}" if output else ""))


@report_app.command("price-differences")
def report_price_differences(
    ctx: typer.Context,
    branch: Annotated[Optional[str], typer.Option(help="Only this branch")] = None,
    since: Annotated[Optional[str], typer.Option(help="Only sales recorded from then on: 2026-11-28 or 2026-11-28T06:00:00Z")] = None,
    fmt: Annotated[ReportFormat, typer.Option("--format")] = ReportFormat.table,
):
    """Sold lines the current catalog disagrees with: product deleted or unknown, or priced otherwise now.

    The sales stay as sold; this shows head office what changed under them.
    """
    found = _run(lambda: list(ctx.obj.price_differences(branch, since)))
    if fmt == ReportFormat.jsonl:
        for d in found:
            print(d.model_dump_json())
    elif fmt == ReportFormat.csv:
        writer = SafeWriter(sys.stdout)  # names and SKUs came from branches
        writer.writerow(DIFFERENCE_COLUMNS)
        for d in found:
            writer.writerow([d.branch, d.seq, d.line, d.recorded_at.isoformat(), d.sku, d.name, d.qty, d.status,
                             d.sold_price, d.list_price, _blank(d.current_price), _blank(d.difference)])
    elif found:
        Console().print(price_differences_table(found))
    err.print(f"{len(found)} sold lines differ from the current catalog")


# Options every report from the day summaries takes.
FromDay = Annotated[str, typer.Option("--from", help="First business day, e.g. 2026-11-01")]
ToDay = Annotated[str, typer.Option("--to", help="Last business day, e.g. 2026-11-30")]
OnlyBranch = Annotated[Optional[str], typer.Option(help="Only this branch")]
Format = Annotated[TableFormat, typer.Option("--format", help="xlsx needs --output")]
Output = Annotated[Optional[Path], typer.Option(help="Write here instead of standard output")]


@report_app.command("sales")
def report_sales(ctx: typer.Context, first: FromDay, last: ToDay, branch: OnlyBranch = None,
                 by: Annotated[SalesBy, typer.Option("--by")] = SalesBy.day, fmt: Format = TableFormat.table,
                 output: Output = None,
                 html: Annotated[Optional[Path], typer.Option("--html", help="Also write a page of charts here "
                                                              "(one self-contained HTML file)")] = None):
    """Sales, discounts, refunds, voids, net and VAT per day, branch, product, payment method, cashier or VAT rate.

    Read from the day summaries the cloud keeps as it applies sales. Each figure says
    whether it is complete: a branch that has not synced since the day ended, with nothing
    pending, is named (--by day), or its last sync shown (--by branch).
    """
    _report(ctx, "sales", first, last, branch, by.value, fmt, output,
            report_html.writing(ctx.obj.report, html) if html else None)


@report_app.command("shifts")
def report_shifts(ctx: typer.Context, first: FromDay, last: ToDay, branch: OnlyBranch = None,
                  fmt: Format = TableFormat.table, output: Output = None):
    """Each closed shift: cashier, opening float, expected and counted cash, and the difference (over or short)."""
    _report(ctx, "shifts", first, last, branch, None, fmt, output)


@report_app.command("exceptions")
def report_exceptions(ctx: typer.Context, first: FromDay, last: ToDay, branch: OnlyBranch = None,
                      fmt: Format = TableFormat.table, output: Output = None,
                      price_differences: Annotated[bool, typer.Option(
                          "--with-price-differences",
                          help="Join the lines sold at another price than the catalog holds now (reads the sales)")] = False):
    """Voids, refunds, discounts and price overrides per branch and cashier, largest amount first.

    With --with-price-differences, the lines `report price-differences` finds since --from
    join them (per branch, cashier `-`); that part reads the sales themselves, so it is slower.
    """
    join = (lambda table: report_files.with_price_differences(
        table, list(ctx.obj.price_differences(branch, report_files.day_start(table))))) if price_differences else None
    _report(ctx, "exceptions", first, last, branch, None, fmt, output, join)


@report_app.command("rebuild")
def report_rebuild(ctx: typer.Context, branch: OnlyBranch = None,
                   from_lake: Annotated[bool, typer.Option("--from-lake", help="Fold the data lake's copy of every "
                                                           "event instead of the stored sales")] = False):
    """Write the day summaries again from the stored sales (once, for sales applied before the cloud kept them).

    Safe to repeat and to run while branches sync: a branch whose sales change meanwhile is read again.
    --from-lake folds the lake's events (docs/reporting.md, "Data lake"); a branch whose lake is
    behind its applied sales is refused until `lake write` has run.
    """
    result = _run(ctx.obj.rebuild_summaries, branch, from_lake)
    for name, days in sorted(result.branches.items()):
        print(f"{name}: {days} days")
    source = "the data lake's" if from_lake else "applied"
    print(f"rebuilt the summaries of {len(result.branches)} branches from {result.events} {source} events")


def _report(ctx, name: str, first: str, last: str, branch: str | None, by: str | None, fmt: TableFormat,
            output: Path | None, join=None) -> None:
    if fmt == TableFormat.xlsx and output is None:
        err.print("[red]--format xlsx writes a file[/]: give --output FILE.xlsx")
        raise typer.Exit(2)
    for option, value in (("--from", first), ("--to", last)):
        try:
            date.fromisoformat(value)
        except ValueError:
            err.print(f"[red]{option} {value!r} is not a date[/]: write it as 2026-11-28")
            raise typer.Exit(2)
    table = _run(ctx.obj.report, name, first, last, branch, by)
    if join is not None:
        table = _run(join, table)
    if fmt == TableFormat.xlsx:
        report_files.write_xlsx(table, output)
    elif fmt == TableFormat.table and output is None:
        Console().print(report_table(table))
    else:
        out = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout
        try:
            if fmt == TableFormat.csv:
                report_files.write_csv(table, out)
            elif fmt == TableFormat.jsonl:
                report_files.write_jsonl(table, out)
            else:
                Console(file=out, width=80).print(report_table(table))
        finally:
            if output:
                out.close()
    for line in report_files.completeness_lines(table):
        err.print(line, markup=False, highlight=False)
    state = "complete" if table.complete else "NOT complete (see the branches above)"
    err.print(f"{len(table.rows)} rows, {table.first} to {table.last} ({table.zone}), {state}"
              + (f"; written to {output}" if output else ""), markup=False, highlight=False)


@deadletter_app.command("list")
def deadletter_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False):
    """Every dead-lettered message with its reason."""
    listing = _run(ctx.obj.dead_letters)
    if as_json:
        print(listing.model_dump_json(indent=2))
        return
    if not listing.dead_letters:
        print("no dead letters")
        return
    Console().print(dead_letters_table(listing.dead_letters))


@deadletter_app.command("show")
def deadletter_show(ctx: typer.Context, letter_id: Annotated[str, typer.Argument(metavar="ID")]):
    """One dead letter: its reason, what it claims to be, and its body (base64)."""
    detail = _run(ctx.obj.dead_letter, letter_id)
    print(detail.model_dump_json(indent=2))


@deadletter_app.command("replay")
def deadletter_replay(ctx: typer.Context, letter_id: Annotated[str, typer.Argument(metavar="ID")]):
    """Apply a dead letter again once its cause is fixed (safe to repeat: sales count once)."""
    result = _run(ctx.obj.replay_dead_letter, letter_id)
    if result.status == "still_failing":
        err.print(f"[red]still refused:[/] {result.reason} ({result.code}); the dead letter is kept")
        raise typer.Exit(1)
    print(f"{letter_id}: {result.status}, {result.new_sales} new sales, applied_through {result.applied_through}")


@deadletter_app.command("discard")
def deadletter_discard(ctx: typer.Context, letter_id: Annotated[str, typer.Argument(metavar="ID")]):
    """Delete a dead letter for good (the branch pushes unacknowledged sales again by itself)."""
    info = _run(ctx.obj.discard_dead_letter, letter_id)
    print(f"discarded {info.id} ({info.code} from {info.branch or 'unknown branch'})")


@app.command("whoami")
def whoami(ctx: typer.Context):
    """Which credential this CLI uses: its name, its roles, and how the cloud recognised it."""
    me = _run(ctx.obj.whoami)
    print(f"{me.name} ({me.via}): roles {', '.join(me.roles)}")


@people_app.command("add")
def people_add(
    ctx: typer.Context,
    name: str,
    role: Annotated[list[Role], typer.Option("--role", help="A role to give (repeat for more): "
                                             + ", ".join(Role) + "; every role can also read")],
):
    """Issue a credential to a person; it is printed once, and the cloud keeps only its hash."""
    try:
        request = PersonCreate(name=name, roles=role)
    except ValidationError as exc:
        err.print(f"[red]cannot add {name!r}[/]: {describe_errors(exc, 3)}; nothing was stored")
        raise typer.Exit(2)
    created = _run(ctx.obj.add_person, request.name, request.roles)
    err.print(f"Credential for [bold]{created.person.name}[/] (roles {', '.join(created.person.roles)}) created. "
              "Give it to them privately; it is shown only now. They set it as BRANCHSYNC_CREDENTIAL.")
    print(created.credential)


@people_app.command("list")
def people_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False):
    """Everyone who has been issued a credential, with roles and whether it is revoked."""
    listing = _run(ctx.obj.people)
    if as_json:
        print(listing.model_dump_json(indent=2))
    elif not listing.people:
        print("no credentials issued yet (the deployment's admin key is the only way in)")
    else:
        Console().print(people_table(listing.people))


@people_app.command("revoke")
def people_revoke(ctx: typer.Context, name: str):
    """Refuse a person's credential from now on (their past actions stay in the audit)."""
    revocation = _run(ctx.obj.revoke_person, name)
    when = f"{revocation.revoked_at:%Y-%m-%d %H:%M} UTC"
    print(f"{name}'s credential was already revoked on {when}" if revocation.already_revoked else
          f"revoked {name}'s credential ({when}); it is refused from now on")


@app.command("audit")
def audit(
    ctx: typer.Context,
    since: Annotated[Optional[str], typer.Option(help="From then on: 2026-11-28 or 2026-11-28T06:00:00Z (default: the last 7 days)")] = None,
    who: Annotated[Optional[str], typer.Option(help="Only this person's requests (admin-key for the deployment's key)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One entry a line (JSON Lines)")] = False,
):
    """Every head-office request: when, who, the route and what it asked, the result (admin only)."""
    entries = _run(lambda: list(ctx.obj.audit(since, who)))
    if as_json:
        for e in entries:
            print(e.model_dump_json())
    elif entries:
        Console().print(audit_table(entries))
    err.print(f"{len(entries)} audit entries")


def _csv_writer(out):
    writer = SafeWriter(out)  # sale lines carry names a branch supplied
    writer.writerow(COLUMNS)
    return writer


def _run(call, *args):
    try:
        return call(*args)
    except AdminError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1)


def _blank(value):
    """An empty cell for None; a number stays a number (a negative difference is not a formula)."""
    return "" if value is None else value


def main():
    app()


if __name__ == "__main__":
    main()
