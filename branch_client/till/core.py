"""The till's decisions, without I/O: browser command, request checks, cart and sale shapes.

The page talks to the server in JSON. Amounts are integer paisa; quantities are exact
decimal strings ("1.250"), never floats, so what the page shows is what the store records.
"""

import hmac
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from shared import limits
from shared.models import Discount, Payment, Product, RefundLine, Sale, SaleLine, sale_number

from ..cashiers import CashierLocked
from ..errors import BadSaleInput
from ..sale_entry import (DiscountSpec, ItemSpec, Match, PaymentSpec, Priced, discount_spec, is_weighed, method_text,
                          parse_payment, parse_qty, payment_spec, payments_of, quantity_of)
from ..settings import Settings
from ..shifts import Shift, ZReport
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


_LINE_EXTRAS = {"price", "price_reason", "discount"}


def cart_lines(lines: Any) -> list[dict]:
    """A submitted cart's lines, each {"sku": str, "qty": "decimal text"}, or {"code": str} for a
    scale label (its weight or price is read from the code again, never taken from the page),
    either with an optional "discount" ({"kind", "value", "reason"}); a {"sku"} line may carry a
    price override "price" (paisa) with its "price_reason"."""
    if not isinstance(lines, list) or not lines:
        raise BadSaleInput("the cart is empty: scan or search a product first")
    out = []
    for n, line in enumerate(lines, 1):
        if isinstance(line, dict) and isinstance(line.get("code"), str) and set(line) <= {"code", "discount"}:
            out.append(dict(line))
        elif (isinstance(line, dict) and isinstance(line.get("sku"), str) and isinstance(line.get("qty"), str)
              and set(line) <= {"sku", "qty"} | _LINE_EXTRAS):
            out.append(dict(line))
        else:
            raise BadSaleInput(f"line {n} of the cart is not a product and a quantity; reload the page")
    return out


def discount_of(body: Any, what: str) -> DiscountSpec | None:
    """A discount from the page: {"kind": "amount" | "percent", "value": "text", "reason"}; an
    amount's value is whole paisa ("5000" is 50 taka), a percent's up to 2 decimals ("12.5")."""
    if body is None:
        return None
    if not isinstance(body, dict) or set(body) != {"kind", "value", "reason"}:
        raise BadSaleInput(f"{what} is not a discount (kind, value, reason); reload the page")
    return discount_spec(body["kind"], body["value"], body["reason"], what)


def cart_items(lines: Any) -> list[ItemSpec]:
    """The items of a submitted cart (see cart_lines), quantities read by the sale's own rule."""
    items = []
    for n, line in enumerate(cart_lines(lines), 1):
        discount = discount_of(line.get("discount"), f"the discount on line {n}")
        if "code" in line:
            items.append(ItemSpec(sku=line["code"], qty=None, text=line["code"], discount=discount))
            continue
        try:
            qty = parse_qty(line["qty"])
        except ValueError as exc:
            raise BadSaleInput(f"line {n} ({line['sku']}): {exc}") from None
        price = line.get("price")
        if price is not None and (not isinstance(price, int) or isinstance(price, bool)
                                  or not 0 <= price <= limits.PAISA_MAX):
            raise BadSaleInput(f"line {n} ({line['sku']}): the price is a whole number of paisa")
        reason = line.get("price_reason")
        if reason is not None and not isinstance(reason, str):
            raise BadSaleInput(f"line {n} ({line['sku']}): the reason for the price is text")
        reason = " ".join(reason.split())[:REASON_MAX_CHARS] if reason else None
        items.append(ItemSpec(sku=line["sku"], qty=qty, price=price, text=f"{line['sku']}={line['qty']}",
                              price_reason=reason or None, discount=discount))
    return items


def cart_payments(body: Mapping[str, Any]) -> list[PaymentSpec]:
    """The payments of a submitted sale: "payments" (a list, see sale_entry.payment_spec), or the
    older body's "payment" (a method: one payment of the whole total)."""
    pays = body.get("payments")
    if pays is None:
        method = body.get("payment", "cash")
        if not isinstance(method, str):
            raise BadSaleInput("payment is a method: cash, card or mobile")
        return [PaymentSpec(parse_payment(method))]
    if not isinstance(pays, list) or len(pays) > limits.SALE_MAX_PAYMENTS:
        raise BadSaleInput(f"payments is a list of at most {limits.SALE_MAX_PAYMENTS} payments; reload the page")
    return [payment_spec(p, n) for n, p in enumerate(pays, 1)]


def refund_returns(body: Any) -> list[tuple[int, str]]:
    """What a refund returns: [{"line": position from 1, "qty": "decimal text"}]."""
    if not isinstance(body, list) or not body:
        raise BadSaleInput("choose the lines that come back and how many of each")
    out = []
    for n, r in enumerate(body, 1):
        if (not isinstance(r, dict) or set(r) != {"line", "qty"} or not isinstance(r["line"], int)
                or isinstance(r["line"], bool) or not isinstance(r["qty"], str)):
            raise BadSaleInput(f"return {n} is not a line and a quantity; reload the page")
        out.append((r["line"], r["qty"]))
    return out


def refund_quote_view(lines: list[RefundLine]) -> dict:
    """What a refund pays back, per returned line and in all (paisa, positive)."""
    return {"lines": [{"line": r.line, "sku": r.sku, "qty": _qty(r.qty), "amount": r.amount} for r in lines],
            "total": sum(r.amount for r in lines)}


def money(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limits.PAISA_MAX:
        raise BadSaleInput(f"{what} is a whole number of paisa, 0 or more")
    return value


def optional_reason(value: Any) -> str | None:
    reason = " ".join(value.split()) if isinstance(value, str) else ""
    return reason[:REASON_MAX_CHARS] or None


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


def locked_view(exc: CashierLocked) -> dict:
    """A sign-in refused because the name is locked: the words, and when it unlocks (UTC, ISO)."""
    return {"error": str(exc), "locked": True, "name": exc.name, "locked_until": exc.until.isoformat()}


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


def discount_view(d: Discount | None) -> dict | None:
    return None if d is None else {"kind": d.kind.value, "value": format(d.value, "f"), "reason": d.reason,
                                   "amount": d.amount}


def payment_view(p: Payment) -> dict:
    return {"method": p.method.value, "amount": p.amount, "tendered": p.tendered, "change": p.change,
            "wallet": p.wallet.value if p.wallet else None, "txn_id": p.txn_id}


def line_view(n: int, line: SaleLine, price_reason: str | None = None) -> dict:
    return {"line": n, "sku": line.sku, "name": line.name, "qty": _qty(line.qty), "unit_price": line.unit_price,
            "list_price": line.list_price, "line_total": line.line_total, "price_reason": price_reason,
            "discount": discount_view(line.discount),
            "net": line.net if line.net is not None else line.line_total,
            "vat_rate": None if line.vat_rate is None else format(line.vat_rate, "f"), "vat": line.vat}


def quote_view(priced: Priced) -> dict:
    """A priced cart (POST /api/quote): what the page shows before payment, computed by the sale's own rules."""
    return {"lines": [line_view(n, line) for n, line in enumerate(priced.lines, 1)],
            "discount": discount_view(priced.discount), "total": priced.total,
            "vat": sum(line.vat for line in priced.lines)}


def sale_view(sale: Sale, generation: int, record: SaleRecord | None = None) -> dict:
    """An event as the page shows it: `number`, `voids` and `refunds` are printed numbers (`14`,
    or `2-14` after a restore); `payment` the methods joined by `+` (as older pages read it)."""
    reasons = record.price_reasons if record is not None else ()
    pays = payments_of(sale)
    view = {
        "number": sale_number(generation, sale.seq), "generation": generation, "seq": sale.seq,
        "kind": sale.kind.value,
        "voids": None if sale.voids is None else sale_number(sale.voids_generation or generation, sale.voids),
        "refunds": None if sale.refunds is None else sale_number(sale.refunds.generation, sale.refunds.seq),
        "recorded_at": sale.recorded_at.isoformat(), "total": sale.total, "cashier": sale.cashier,
        "payment": method_text(sale),
        "payments": [payment_view(p) for p in pays],
        "change": sum(p.change or 0 for p in pays),
        "discount": discount_view(sale.discount),
        "vat": sum(line.vat or 0 for line in sale.lines),
        "lines": [line_view(n, line, reasons[n - 1] if n <= len(reasons) else None)
                  for n, line in enumerate(sale.lines, 1)],
        "returns": [{"line": r.line, "sku": r.sku, "qty": _qty(r.qty), "amount": r.amount}
                    for r in sale.returns or ()],
        "shift": sale.shift.model_dump(mode="json") if sale.shift else None,
    }
    if record is not None:
        view.update(state=record.state.value, voided_by=record.voided_by, reason=record.reason,
                    cashier=record.cashier or sale.cashier, refunded_by=list(record.refunded_by))
        if record.returned is not None:
            for line in view["lines"]:
                qty, amount = record.returned.get(line["line"], (Decimal(0), 0))
                left = Decimal(0) if record.voided_by else sale.lines[line["line"] - 1].qty - qty
                line.update(returned=_qty(qty), returned_amount=amount, refundable=_qty(left))
    return view


def record_view(record: SaleRecord) -> dict:
    return sale_view(record.sale, record.generation, record)


def shift_view(shift: Shift | None) -> dict | None:
    return None if shift is None else {"id": shift.id, "cashier": shift.cashier, "opened_at": shift.opened_at,
                                       "opening_float": shift.opening_float}


def z_view(report: ZReport) -> dict:
    """The Z report as JSON: counts, paisa, and `by_method` per payment method."""
    return report.as_json()


def status_view(status: BranchStatus, *, syncing: bool, sync_note: dict | None,
                time_zone: str = "Asia/Dhaka") -> dict:
    """What the page's sync line shows (the same status `branchsync status` prints), and the
    time zone the page shows times in; never the secret or the cloud's address.

    The page words the background sync's `sync_note` ({"code", and its numbers}, see
    autopush.describe) and `last_error_code` in its own language; `sync_message` and
    `last_error` are the English words, shown as they are when the page has no words for a code."""
    return {
        "branch": status.branch,
        "enrolled": status.enrolled,
        "online": status.online,
        "pending": status.pending,
        "last_sync": status.last_sync_ok,
        "last_error": status.last_error,
        "last_error_code": status.last_error_code,
        "syncing": syncing,
        "sync_message": None if sync_note is None else sync_note["text"],
        "sync_note": None if sync_note is None else {k: v for k, v in sync_note.items() if k != "text"},
        "products": status.products,
        "time_zone": time_zone,
    }
