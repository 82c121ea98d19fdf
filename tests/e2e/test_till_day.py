"""End to end: a cashier's whole shift at `branchsync till`, driven in Debian's chromium, synced to
the dev host and Azurite, and head office's sales export (jsonl and csv) checked to the paisa.

One till process and one page for the whole day: the cashier signs in with the PIN the manager
gave at the command line and opens a shift; rings up a sale of two scans, a scale label and a
Bangla search with a line discount, paid part by bKash and part in cash with change, and checks
its receipt; refunds one line of it; resumes a held cart after a page reload and records it with
a sale discount by a double-clicked submit; voids a third sale; closes the shift with counted
cash and reads the Z report; then "sync now". The export must hold exactly those six events.
"""

import csv
import io
import json
import subprocess
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from branch_client.barcodes import check_digit
from tests.branch_client.till.test_page import adjust, scan
from tests.e2e.test_console_scripts import cli, enrolled_branch, env, exported  # noqa: F401 (env: a fixture)
from tests.e2e.test_till import BIN, sync_now, till_page

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]

SHOP, SHOP_BIN = "স্বপ্ন সুপারশপ", "000123456-0101"
CASHIER, PIN = "Rahim", "4821"
BANGLA_DIGITS = str.maketrans("0123456789", "০১২৩৪৫৬৭৮৯")


def add_cashier(home: Path, name: str, pin: str, env: dict) -> None:
    """`branchsync cashier add NAME` as the manager runs it, the PIN typed twice at its prompt.

    In a session of its own the process has no terminal, so the hidden prompt reads the PIN from
    standard input as it would from the keyboard.
    """
    proc = subprocess.run([str(BIN / "branchsync"), "--home", str(home), "cashier", "add", name], env=env, text=True,
                          input=f"{pin}\n{pin}\n", capture_output=True, timeout=60, start_new_session=True)
    assert proc.returncode == 0, f"cashier add exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"


def shift_key(page, cash: str) -> None:
    """F3 then S: the shift panel; type the counted cash (the float, or the drawer at the close) and Enter."""
    page.keyboard.press("F3")
    page.keyboard.press("s")
    expect(page.locator("#shift-cash")).to_be_focused()
    page.keyboard.type(cash)
    page.keyboard.press("Enter")


def dhaka(recorded_at: str) -> str:
    """The receipt's date and time: en-GB short style in Asia/Dhaka."""
    return datetime.fromisoformat(recorded_at).astimezone(ZoneInfo("Asia/Dhaka")).strftime("%d/%m/%Y, %H:%M")


def test_a_cashiers_whole_shift_at_the_till_reaches_head_offices_export_to_the_paisa(tmp_path, env, branch_name, browser):
    rice, oil, dal, fish = (f"{kind}-{branch_name}" for kind in ("RICE", "OIL", "DAL", "FISH"))
    # Every test shares one cloud catalog: the barcodes, the scale's item code and the Bangla
    # name searched for are this test's own, so no other test's product answers them.
    unique = int(branch_name[2:], 16)
    rice_code, oil_code = (f"{unique % 10**11:011d}{d}" for d in ("20", "21"))
    item = f"{unique % 10**5:05d}"
    fish_base, fish_label = (body + check_digit(body) for body in (f"20{item}00000", f"20{item}01250"))  # 1.250 kg
    dal_name = f"মুগ ডাল {str(unique % 10**6).translate(BANGLA_DIGITS)}"
    (tmp_path / "c.csv").write_text(
        "sku,name,price,unit,barcode,vat_rate\n"
        f"{rice},চাল ৫ কেজি,420,bag,{rice_code},5\n"
        f"{oil},সয়াবিন তেল ২ লিটার,385,pcs,{oil_code},15\n"
        f"{fish},রুই মাছ,550,kg,{fish_base},0\n"
        f"{dal},{dal_name},140.50,pcs,,5\n", encoding="utf-8")
    cli("branchsync-admin", "catalog", "import", tmp_path / "c.csv", env=env)
    home = enrolled_branch(tmp_path, branch_name, env)
    cli("branchsync", "--home", home, "sync", env=env)
    add_cashier(home, CASHIER, PIN, env)
    cli("branchsync", "--home", home, "config", "set", "shop.name", SHOP, env=env)
    cli("branchsync", "--home", home, "config", "set", "shop.bin", SHOP_BIN, env=env)

    # Without the push after each sale, so every event waits for "sync now".
    with till_page(browser, home, env, "--no-auto-push") as page:
        receipt_time = ring_up_the_day(page, fish_label=fish_label, codes=(rice_code, oil_code), dal_name=dal_name)
        sync_now(page, branch_name, 6, env)

    events = [e["sale"] for e in exported(branch_name, env)]
    check_the_jsonl_export(events, rice=rice, oil=oil, dal=dal, fish=fish)
    check_the_csv_export(branch_name, env, rice=rice, oil=oil, dal=dal, fish=fish)
    assert receipt_time == dhaka(events[0]["recorded_at"])  # the receipt's time is the recorded one, in Asia/Dhaka


def ring_up_the_day(page, *, fish_label: str, codes: tuple[str, str], dal_name: str) -> str:
    """Everything the cashier does, checked on screen as it happens; returns the first receipt's time."""
    rice_code, oil_code = codes
    # --- sign in with the PIN the manager set, open the shift with a counted float ---------------
    expect(page.locator("#signin-panel")).to_be_visible()
    expect(page.locator("#signin-name")).to_be_focused()
    page.keyboard.type("rahim")  # names ignore case
    page.keyboard.press("Enter")
    page.keyboard.type(PIN)
    page.keyboard.press("Enter")
    expect(page.locator("#cashier-name")).to_have_text(CASHIER)
    shift_key(page, "1000")
    expect(page.locator("#message")).to_contain_text("Shift open with a float of ৳1,000.00")

    # --- sale 1: two scans, a scale label, a Bangla search; 10% off the oil ----------------------
    scan(page, rice_code, 1)
    scan(page, oil_code, 2)
    scan(page, fish_label, 3)
    page.keyboard.press("F2")
    page.keyboard.insert_text(dal_name)
    expect(page.locator("#results li")).to_have_count(1)
    expect(page.locator("#results li.hl")).to_contain_text(dal_name)
    page.keyboard.press("Enter")
    expect(page.locator("#cart-lines tr")).to_have_count(4)
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")  # the oil: 4 lines, the last one added is chosen
    adjust(page, "F7", "10%", "dented bottle")
    oil_row = page.locator("#cart-lines tr").nth(1)
    expect(oil_row.locator(".disc")).to_contain_text("−৳38.50 · dented bottle")
    expect(oil_row.locator(".vat")).to_have_text("incl. VAT 15%: ৳45.20")  # 346.50 x 15 / 115, half up
    expect(page.locator("#total")).to_have_text("৳1,594.50")  # 420 + 346.50 + 1.25 x 550 + 140.50
    expect(page.locator("#vat-total")).to_have_text("incl. VAT ৳71.89")  # 20.00 + 45.20 + 0 + 6.69

    # Split: ৳1,000 by bKash, the rest in cash from a ৳1,000 note.
    page.keyboard.press("F4")
    expect(page.locator("#payment")).to_be_visible()
    page.keyboard.press("F8")
    expect(page.locator("#txn-id")).to_be_focused()
    page.fill("#pay-amount", "1000")
    page.locator("#txn-id").focus()
    page.keyboard.type("8N7A6D5C")
    page.keyboard.press("Enter")  # less than the total: a part of its own
    expect(page.locator("#parts li")).to_have_count(1)
    expect(page.locator("#remaining")).to_have_text("৳594.50")
    page.keyboard.press("F6")
    page.keyboard.press("F11")
    expect(page.locator("#change")).to_have_text("৳405.50")
    with page.expect_popup() as popup:
        page.keyboard.press("Enter")
        expect(page.locator("#done-title")).to_contain_text("Sale 1 recorded")
        expect(page.locator("#done-change")).to_have_text("৳405.50")
        page.keyboard.press("Control+p")
    receipt = popup.value
    expect(receipt.locator("body")).to_have_attribute("data-ready", "1")
    text = receipt.locator("#receipt").inner_text()
    receipt_time = receipt.locator("#r-time").inner_text()
    for part in (SHOP, f"BIN: {SHOP_BIN}", "#1", "Times in Asia/Dhaka", f"Cashier: {CASHIER}", "চাল ৫ কেজি", dal_name,
                 "1.25 × ৳550.00", "VAT 5% ৳20.00", "VAT 15% ৳45.20", "VAT 5% ৳6.69", "dented bottle", "−৳38.50",
                 "৳1,594.50", "৳71.89", "Payment: bKash", "৳1,000.00", "8N7A6D5C", "Payment: Cash", "৳594.50",
                 "Tendered", "Change", "৳405.50"):
        assert part in text, part
    receipt.close()

    # --- refund of one line of sale 1: the bag of rice, paid back in cash -------------------------
    page.keyboard.press("F3")
    scan_receipt_number(page, "1")
    expect(page.locator("#refund-title")).to_have_text("Refund of sale 1")
    page.keyboard.press("+")
    expect(page.locator("#refund-total")).to_have_text("৳420.00")
    page.keyboard.press("Enter")
    expect(page.locator("#refund-reason")).to_be_focused()
    page.keyboard.type("wrong rice")
    page.keyboard.press("Enter")
    expect(page.locator("#message")).to_contain_text("Sale 1 refunded by number 2: pay back ৳420.00")

    # --- a held cart, resumed after a reload, with a sale discount; a double-clicked card payment -
    scan(page, rice_code, 1)
    page.keyboard.press("F2")
    page.keyboard.insert_text(dal_name)
    expect(page.locator("#results li.hl")).to_contain_text(dal_name)
    page.keyboard.press("Enter")
    expect(page.locator("#cart-lines tr")).to_have_count(2)
    page.keyboard.press("Insert")
    expect(page.locator("#message")).to_contain_text("Cart of 2 lines held")
    page.reload()
    expect(page.locator("#cashier-name")).to_have_text(CASHIER)  # a reload keeps the cashier signed in
    expect(page.locator("#hold")).to_contain_text("Held carts (1)")
    page.keyboard.press("Insert")
    expect(page.locator("#held-rows tr")).to_have_count(1)
    page.keyboard.press("Enter")
    expect(page.locator("#message")).to_contain_text("Held cart resumed: 2 lines")
    adjust(page, "F8", "20", "regular customer")
    expect(page.locator("#total")).to_have_text("৳540.50")  # 420 + 140.50 - 20
    page.keyboard.press("F4")
    page.keyboard.press("F7")  # by card, for what is left to pay
    expect(page.locator("#pay-amount")).to_have_value("540.50")
    page.locator("#confirm").dblclick()
    expect(page.locator("#done-title")).to_contain_text("Sale 3 recorded")

    # --- sale 4 in cash, voided with a reason -----------------------------------------------------
    scan(page, oil_code, 1)
    page.keyboard.press("F4")
    page.keyboard.press("Enter")  # the exact amount in cash
    expect(page.locator("#done-title")).to_contain_text("Sale 4 recorded")
    page.keyboard.press("F3")
    expect(page.locator("#sales-rows tr").first).to_contain_text("385.00")  # the newest first
    page.keyboard.press("v")
    expect(page.locator("#void-reason")).to_be_focused()
    page.keyboard.type("customer changed mind")
    page.keyboard.press("Enter")
    expect(page.locator("#message")).to_contain_text("Sale 4 voided by number 5")
    page.keyboard.press("Escape")
    expect(page.locator("#sales-panel")).to_be_hidden()

    # --- close the shift with ৳1,170.00 counted: the Z report ------------------------------------
    shift_key(page, "1170")
    z = page.locator("#z-report")
    expect(z).to_be_visible()
    rows = dict(tuple(r.split("\t")[:2]) for r in z.locator("tr").all_inner_texts())
    assert {k: v for k, v in rows.items() if k not in ("Opened", "Closed")} == {
        "Cashier": CASHIER,
        "Sales (3), before discounts": "৳2,578.50",  # 1,633.00 + 560.50 + 385.00
        "Discounts": "−৳58.50",  # 38.50 on the oil + 20 on sale 3
        "Sales, net": "৳2,520.00",
        "Refunds (1)": "−৳420.00",
        "Voids (1)": "−৳385.00",
        "Taken by Cash": "৳174.50",  # 594.50 - 420 + 385 - 385
        "Taken by Card": "৳540.50",
        "Taken by Mobile wallet": "৳1,000.00",
        "Opening float": "৳1,000.00",
        "Cash taken": "৳979.50",  # 594.50 + 385
        "Cash paid back": "−৳805.00",  # 420 + 385
        "Cash expected": "৳1,174.50",
        "Cash counted": "৳1,170.00",
        "Short": "-৳4.50",
    }
    with page.expect_popup() as popup:
        page.keyboard.press("Control+p")  # the Z report's print page
    printed = popup.value
    expect(printed.locator("body")).to_have_attribute("data-ready", "1")
    text = printed.locator("#zprint").inner_text()
    for part in (SHOP, f"BIN: {SHOP_BIN}", "Z report", "Times in Asia/Dhaka", "৳1,174.50", "৳1,170.00", "-৳4.50"):
        assert part in text, part
    printed.close()
    page.keyboard.press("Escape")
    expect(page.locator("#sync-pending")).to_have_text("6")
    return receipt_time


def scan_receipt_number(page, number: str) -> None:
    """In the sales list: the receipt's number, typed or scanned, then Enter opens its refund."""
    page.keyboard.type(number, delay=4)
    page.keyboard.press("Enter")
    expect(page.locator("#refund-panel")).to_be_visible()


def check_the_jsonl_export(events: list[dict], *, rice: str, oil: str, dal: str, fish: str) -> None:
    assert [(e["seq"], e["kind"], e["total"], e["cashier"]) for e in events] == [
        (1, "sale", 159450, CASHIER), (2, "refund", -42000, CASHIER), (3, "sale", 54050, CASHIER),
        (4, "sale", 38500, CASHIER), (5, "void", -38500, CASHIER), (6, "shift_close", 0, CASHIER)]
    first, refund, held, voided, void, close = events

    lines = lambda e: [(l["sku"], l["qty"], l["line_total"], l.get("discount") and (l["discount"]["amount"], l["discount"]["reason"]),  # noqa: E731
                        l["net"], l["vat_rate"], l["vat"]) for l in e["lines"]]
    assert lines(first) == [(rice, "1", 42000, None, 42000, "5", 2000),
                            (oil, "1", 38500, (3850, "dented bottle"), 34650, "15", 4520),
                            (fish, "1.25", 68750, None, 68750, "0", 0),
                            (dal, "1", 14050, None, 14050, "5", 669)]
    assert first["payments"] == [
        {"method": "mobile", "amount": 100000, "wallet": "bkash", "txn_id": "8N7A6D5C"},
        {"method": "cash", "amount": 59450, "tendered": 100000, "change": 40550}]

    assert refund["refunds"] == {"generation": 1, "seq": 1}
    assert [(r["line"], r["sku"], r["qty"], r["amount"]) for r in refund["returns"]] == [(1, rice, "1", 42000)]
    assert refund["payments"] == [{"method": "cash", "amount": -42000}]
    # The reasons the cashier typed for the refund and the void reach head office with them.
    assert (refund["reason"], void["reason"]) == ("wrong rice", "customer changed mind")
    assert not any("reason" in e for e in (first, held, voided, close))
    assert not any("price_reason" in l for e in events for l in e["lines"])  # no price was overridden

    # The sale discount shared over the lines by their totals, rounded down, the paisa left to
    # the first: 2000 x 42000 / 56050 = 1498.6 -> 1498 + 1, 2000 x 14050 / 56050 = 501.3 -> 501.
    assert (held["discount"]["amount"], held["discount"]["reason"]) == (2000, "regular customer")
    assert lines(held) == [(rice, "1", 42000, None, 40501, "5", 1929), (dal, "1", 14050, None, 13549, "5", 645)]
    assert held["payments"] == [{"method": "card", "amount": 54050}]

    assert lines(voided) == [(oil, "1", 38500, None, 38500, "15", 5022)]
    assert voided["payments"] == [{"method": "cash", "amount": 38500}]
    assert void["voids"] == 4 and void["lines"] == []
    assert void["payments"] == [{"method": "cash", "amount": -38500}]

    shift = close["shift"]
    assert (shift["opening_float"], shift["counted_cash"], shift["expected_cash"]) == (100000, 117000, 117450)
    assert shift["by_method"] == {"cash": 17450, "card": 54050, "mobile": 100000}


def check_the_csv_export(branch_name: str, env: dict, *, rice: str, oil: str, dal: str, fish: str) -> None:
    out = cli("branchsync-admin", "sales", "export", "--branch", branch_name, "--format", "csv", env=env).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["seq"], r["kind"], r["line"], r["sku"], r["net_paisa"], r["vat_paisa"]) for r in rows] == [
        ("1", "sale", "1", rice, "42000", "2000"), ("1", "sale", "2", oil, "34650", "4520"),
        ("1", "sale", "3", fish, "68750", "0"), ("1", "sale", "4", dal, "14050", "669"),
        ("2", "refund", "1", rice, "-42000", ""),
        ("3", "sale", "1", rice, "40501", "1929"), ("3", "sale", "2", dal, "13549", "645"),
        ("4", "sale", "1", oil, "38500", "5022"),
        ("5", "void", "", "", "", ""), ("6", "shift_close", "", "", "", "")]
    assert {r["cashier"] for r in rows} == {CASHIER}
    # The total on each event's first row only: the column sums to what the shift took.
    assert sum(int(r["total_paisa"]) for r in rows if r["total_paisa"]) == 159450 - 42000 + 54050 + 38500 - 38500
    by_seq = {r["seq"]: r for r in rows}  # an event's last row; payments repeat on each
    assert by_seq["1"]["payments"] == "mobile/bkash:100000 txn=8N7A6D5C; cash:59450 tendered=100000 change=40550"
    assert [(r["discount_paisa"], r["discount_reason"]) for r in rows if r["seq"] == "1"][1] == ("3850", "dented bottle")
    assert (by_seq["3"]["sale_discount_paisa"], by_seq["3"]["sale_discount_reason"]) == ("2000", "regular customer")
    assert by_seq["2"]["refunds"] == "1" and by_seq["5"]["voids"] == "4"
    assert {r["seq"]: r["reason"] for r in rows if r["reason"]} == {"2": "wrong rice", "5": "customer changed mind"}
    assert json.loads(by_seq["6"]["shift"])["expected_cash"] == 117450
