"""The till's decisions, without I/O: browser command, request checks, cart and sale shapes.

The page talks to the server in JSON. Amounts are integer paisa; quantities are exact
decimal strings ("1.250"), never floats, so what the page shows is what the store records.
"""

import hmac
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from shared.models import Product, Sale, sale_number

from ..errors import BadSaleInput
from ..sale_entry import ItemSpec, Match, is_weighed, parse_qty, quantity_of
from ..settings import Settings
from ..status import BranchStatus
from ..store import HeldCart, SaleRecord

TOKEN_HEADER = "x-till-token"
# Requests that change nothing; every other method needs the per-launch token.
SAFE_METHODS = frozenset({"GET", "HEAD"})
# The page's id for one submitted cart: a uuid4 in hex.
CLIENT_KEY = re.compile(r"^[0-9a-f]{32}$")
REASON_MAX_CHARS = 200

_EDGE = ("Microsoft", "Edge", "Application", "msedge.exe")
_EDGE_ROOTS = ("ProgramFiles(x86)", "ProgramFiles", "LOCALAPPDATA")
_EDGE_NAMES = ("msedge", "microsoft-edge", "microsoft-edge-stable")


def browser_command(url: str, *, windows: bool, env: Mapping[str, str],
                    exists: Callable[[str], bool], which: Callable[[str], str | None],
                    kiosk_printing: bool = False) -> list[str] | None:
    """The command that opens `url` in Edge app mode (a window with no address bar), or None
    when Edge is not installed (the caller then opens the default browser). `kiosk_printing`
    adds Chromium's --kiosk-printing: receipts go to the default printer with no dialog.

    On Windows Edge lives under Program Files (x86), Program Files or the user's local app
    data; no registry is read. Elsewhere it is looked up on PATH.
    """
    candidates: list[str] = []
    if windows:
        for root in _EDGE_ROOTS:
            base = env.get(root)
            if base:
                candidates.append("\\".join((base.rstrip("\\"), *_EDGE)))
    found = next((c for c in candidates if exists(c)), None)
    if found is None:
        found = next((p for p in (which(n) for n in _EDGE_NAMES) if p), None)
    if found is None:
        return None
    return [found, *(["--kiosk-printing"] if kiosk_printing else []), f"--app={url}"]


def host_allowed(host: str | None, port: int) -> bool:
    """Only the till's own address: a page on another name that resolves to 127.0.0.1 (DNS
    rebinding) sends its own name in Host and is refused."""
    return host == f"127.0.0.1:{port}"


def token_ok(sent: str | None, token: str) -> bool:
    return sent is not None and hmac.compare_digest(sent.encode(), token.encode())


def cart_lines(lines: Any) -> list[dict]:
    """A submitted cart's lines, each {"sku": str, "qty": "decimal text"}, or {"code": str} for a
    scale label (its weight or price is read from the code again, never taken from the page)."""
    if not isinstance(lines, list) or not lines:
        raise BadSaleInput("the cart is empty: scan or search a product first")
    out = []
    for n, line in enumerate(lines, 1):
        if isinstance(line, dict) and isinstance(line.get("code"), str) and set(line) <= {"code"}:
            out.append({"code": line["code"]})
        elif isinstance(line, dict) and isinstance(line.get("sku"), str) and isinstance(line.get("qty"), str):
            out.append({"sku": line["sku"], "qty": line["qty"]})
        else:
            raise BadSaleInput(f"line {n} of the cart is not a product and a quantity; reload the page")
    return out


def cart_items(lines: Any) -> list[ItemSpec]:
    """The items of a submitted cart (see cart_lines), quantities read by the sale's own rule."""
    items = []
    for n, line in enumerate(cart_lines(lines), 1):
        if "code" in line:
            items.append(ItemSpec(sku=line["code"], qty=None, text=line["code"]))
            continue
        try:
            qty = parse_qty(line["qty"])
        except ValueError as exc:
            raise BadSaleInput(f"line {n} ({line['sku']}): {exc}") from None
        items.append(ItemSpec(sku=line["sku"], qty=qty, text=f"{line['sku']}={line['qty']}"))
    return items


def match_view(match: Match) -> dict:
    """What a scan adds: the product, and for a scale label its code, quantity and any printed price."""
    view = {"product": product_view(match.product), "code": None, "qty": None, "price": None}
    if match.embedded is not None:
        qty, price = quantity_of(ItemSpec(match.embedded.code, None), match)
        view.update(code=match.embedded.code, qty=format(qty, "f"), price=price)
    return view


def sign_in_fields(body: Mapping[str, Any]) -> tuple[str, str]:
    name, pin = body.get("name"), body.get("pin")
    if not isinstance(name, str) or not isinstance(pin, str) or not name.strip() or not pin:
        raise BadSaleInput("type your name and your PIN")
    return name, pin


def held_view(held: HeldCart) -> dict:
    return {"id": held.id, "held_at": held.held_at, "cashier": held.cashier, "total": held.total,
            "line_count": held.line_count, "first_name": held.first_name}


def shop_view(settings: Settings, branch: str | None) -> dict:
    """The receipt's header: what the manager set with 'branchsync config'."""
    return {"name": settings["shop.name"], "bin": settings["shop.bin"], "branch": branch,
            "time_zone": settings["time_zone"]}


def client_key(value: Any) -> str:
    if not isinstance(value, str) or not CLIENT_KEY.match(value):
        raise BadSaleInput("the sale carries no valid id; reload the page and ring it up again")
    return value


def void_reason(value: Any) -> str:
    reason = " ".join(value.split()) if isinstance(value, str) else ""
    if not reason:
        raise BadSaleInput("say why the sale is voided (a reason is required)")
    return reason[:REASON_MAX_CHARS]


def product_view(p: Product) -> dict:
    return {"sku": p.sku, "name": p.name, "price": p.price, "barcode": p.barcode, "unit": p.unit,
            "weighed": is_weighed(p.unit), "active": p.active, "vat_rate": str(p.vat_rate)}


def _qty(q: Decimal) -> str:
    return format(q, "f")


def sale_view(sale: Sale, generation: int, record: SaleRecord | None = None) -> dict:
    """A sale as the page shows it: `number` and `voids` are the printed numbers (`14`, or `2-14` after a restore)."""
    view = {
        "number": sale_number(generation, sale.seq), "generation": generation, "seq": sale.seq,
        "kind": sale.kind.value,
        "voids": None if sale.voids is None else sale_number(sale.voids_generation or generation, sale.voids),
        "recorded_at": sale.recorded_at.isoformat(), "total": sale.total,
        "payment": sale.payment.method.value,
        "lines": [{"sku": line.sku, "name": line.name, "qty": _qty(line.qty), "unit_price": line.unit_price,
                   "line_total": line.line_total} for line in sale.lines],
    }
    if record is not None:
        view.update(state=record.state.value, voided_by=record.voided_by, reason=record.reason,
                    cashier=record.cashier)
    return view


def record_view(record: SaleRecord) -> dict:
    return sale_view(record.sale, record.generation, record)


def status_view(status: BranchStatus, *, syncing: bool, sync_message: str | None,
                time_zone: str = "Asia/Dhaka") -> dict:
    """What the page's sync line shows (the same status `branchsync status` prints), and the
    time zone the page shows times in; never the secret or the cloud's address."""
    return {
        "branch": status.branch,
        "enrolled": status.enrolled,
        "online": status.online,
        "pending": status.pending,
        "last_sync": status.last_sync_ok,
        "last_error": status.last_error,
        "syncing": syncing,
        "sync_message": sync_message,
        "products": status.products,
        "time_zone": time_zone,
    }
