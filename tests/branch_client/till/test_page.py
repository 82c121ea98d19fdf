"""The till page in real headless Chromium (Debian's, through Playwright) against a real server.

Keys are typed as a cashier and a keyboard-wedge scanner type them: the scanner is digits a
few milliseconds apart and Enter, sent to the page without any click first.
"""

import re
import uuid
from datetime import timezone
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from branch_client.identity import Identity

RICE, DAL = "8901234567890", "8901234567891"


def scan(page, code: str, lines: int | None = None) -> None:
    """Type `code` as a wedge scanner does; with `lines`, wait until the cart shows that many."""
    page.keyboard.type(code, delay=4)
    page.keyboard.press("Enter")
    if lines is not None:
        expect(page.locator("#cart-lines tr")).to_have_count(lines)


def pay(page, *keys: str) -> None:
    """Open the payment step (F4), then press `keys` (method, notes)."""
    page.keyboard.press("F4")
    expect(page.locator("#payment")).to_be_visible()
    for key in keys:
        page.keyboard.press(key)


def cart(page) -> list[tuple[str, str]]:
    rows = page.locator("#cart-lines tr")
    return [(rows.nth(i).locator("td").nth(0).inner_text().splitlines()[0], rows.nth(i).locator("input.qty").input_value())
            for i in range(rows.count())]


def test_scanned_codes_are_added_from_the_moment_the_page_opens_and_an_unknown_code_adds_nothing(page):
    scan(page, RICE)
    expect(page.locator("#cart-lines tr")).to_have_count(1)
    scan(page, DAL)
    expect(page.locator("#cart-lines tr")).to_have_count(2)
    scan(page, RICE)  # again: one more of the same line
    expect(page.locator("#cart-lines tr").first.locator("input.qty")).to_have_value("2")
    scan(page, "4006381333931")
    expect(page.locator("#message")).to_contain_text("Unknown code 4006381333931")
    assert cart(page) == [("চাল ৫ কেজি", "2"), ("মসুর ডাল ১ কেজি", "1")]
    expect(page.locator("#total")).to_have_text("৳980.50")


def test_search_in_bangla_and_pick_the_second_result_with_the_arrow_keys(page):
    page.keyboard.press("F2")
    page.keyboard.insert_text("চা")  # what a Bangla input method sends
    expect(page.locator("#results li")).to_have_count(2)
    expect(page.locator("#results li.hl")).to_contain_text("চা পাতা")
    page.keyboard.press("ArrowDown")
    expect(page.locator("#results li.hl")).to_contain_text("চাল ৫ কেজি")
    page.keyboard.press("Enter")
    assert cart(page) == [("চাল ৫ কেজি", "1")]
    scan(page, DAL)  # focus went back to the page: the scanner works again at once
    expect(page.locator("#cart-lines tr")).to_have_count(2)


def test_a_weighed_quantity_takes_three_decimals_and_a_line_can_be_removed(page):
    scan(page, "2000000000015", lines=1)
    scan(page, DAL, lines=2)
    page.keyboard.press("ArrowUp")
    page.keyboard.press("*")
    page.keyboard.type("1.255")
    page.keyboard.press("Enter")
    expect(page.locator("#total")).to_have_text("৳222.08")  # 65 x 1.255 = 81.575 -> 81.58, + 140.50
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Delete")
    assert cart(page) == [("আটা (খোলা)", "1.255")]


def test_cash_payment_shows_the_change_and_says_recorded_only_after_the_server_committed(page, till):
    scan(page, RICE)
    pay(page, "F10")  # a 500 note
    expect(page.locator("#change")).to_have_text("৳80.00")
    page.keyboard.press("Enter")
    expect(page.locator("#done-title")).to_contain_text("Sale 1 recorded")
    expect(page.locator("#done-change")).to_have_text("৳80.00")
    sale = till.store.get_sale(1).sale
    assert sale.total == 42000 and sale.payment.method == "cash"
    expect(page.locator("#cart-lines tr")).to_have_count(0)
    scan(page, DAL)  # the next customer's first scan, without a click
    expect(page.locator("#cart-lines tr")).to_have_count(1)


def test_the_receipt_shows_branch_number_dhaka_time_lines_total_payment_and_change(page, till, browser):
    till.store.save_identity(Identity("dhaka-gulshan", "http://127.0.0.1:9", "k" * 43))
    scan(page, RICE)
    scan(page, DAL)
    pay(page, "F11")
    with page.expect_popup() as popup:
        page.keyboard.press("Enter")
        expect(page.locator("#done-title")).to_contain_text("recorded")
        page.keyboard.press("Control+p")
    receipt = popup.value
    expect(receipt.locator("body")).to_have_attribute("data-ready", "1")
    text = receipt.locator("#receipt").inner_text()
    sale = till.store.get_sale(1).sale
    dhaka = sale.recorded_at.astimezone(ZoneInfo("Asia/Dhaka")).strftime("%d/%m/%Y, %H:%M")
    for part in ("dhaka-gulshan", "#1", dhaka, "Asia/Dhaka", "চাল ৫ কেজি", "মসুর ডাল ১ কেজি", "1 × ৳420.00",
                 "৳560.50", "Cash", "৳1,000.00", "৳439.50"):
        assert part in text, part
    assert "/static/receipt-80.css" in receipt.locator("#paper").get_attribute("href")
    with receipt.expect_navigation():
        receipt.click("#paper-58")
    expect(receipt.locator("body")).to_have_attribute("data-ready", "1")
    assert "/static/receipt-58.css" in receipt.locator("#paper").get_attribute("href")
    width = lambda: receipt.evaluate("document.getElementById('receipt').getBoundingClientRect().width")  # noqa: E731
    for _ in range(50):  # the paper's stylesheet is switched once the page has read its address
        if width() < 230:  # 54 mm is about 204 px
            break
        receipt.wait_for_timeout(100)
    assert width() < 230
    assert "৳439.50" in receipt.locator("#receipt").inner_text()


def test_a_sale_is_voided_with_a_reason_from_the_sales_list(page, till):
    scan(page, RICE)
    pay(page, "F7")  # card
    page.keyboard.press("Enter")
    expect(page.locator("#done-title")).to_contain_text("Sale 1 recorded")
    page.keyboard.press("F3")
    expect(page.locator("#sales-rows tr")).to_have_count(1)
    page.keyboard.press("v")
    page.keyboard.type("customer changed mind")
    page.keyboard.press("Enter")
    expect(page.locator("#message")).to_contain_text("Sale 1 voided by number 2")
    expect(page.locator("#sales-rows tr")).to_have_count(2)
    record = till.store.get_sale(2)
    assert record.sale.voids == 1 and record.reason == "customer changed mind" and record.sale.total == -42000


def test_a_double_clicked_submit_records_one_sale(page, till):
    scan(page, RICE)
    pay(page)
    page.locator("#confirm").dblclick()
    page.keyboard.press("Enter")
    expect(page.locator("#done-title")).to_contain_text("Sale 1 recorded")
    page.wait_for_timeout(300)
    assert till.store.status()["sales_recorded"] == 1


def test_a_retried_submit_of_the_same_cart_records_one_sale(page, till):
    # The page resends the same id when an answer is lost; the server returns the first sale.
    key = uuid.uuid4().hex
    seqs = page.evaluate("""async (key) => {
        const token = document.querySelector('meta[name="till-token"]').content;
        const send = () => fetch('/api/sales', {method: 'POST', headers: {'X-Till-Token': token, 'Content-Type': 'application/json'},
                                 body: JSON.stringify({key, lines: [{sku: 'SOAP', qty: '1'}], payment: 'cash'})}).then(r => r.json());
        const answers = await Promise.all([send(), send(), send()]);
        return answers.map(a => a.sale.seq);
    }""", key)
    assert seqs == [1, 1, 1] and till.store.status()["sales_recorded"] == 1


def test_a_reload_loses_only_the_unfinished_cart(page, till):
    scan(page, RICE)
    pay(page, "Enter")
    expect(page.locator("#done-title")).to_contain_text("Sale 1 recorded")
    scan(page, DAL)
    expect(page.locator("#cart-lines tr")).to_have_count(1)
    page.reload()
    expect(page.locator("#cart-lines tr")).to_have_count(0)
    page.keyboard.press("F3")
    expect(page.locator("#sales-rows tr")).to_have_count(1)
    assert till.store.status()["sales_recorded"] == 1


def test_the_sync_line_shows_waiting_sales_and_bangla_switches_the_words(page, till):
    scan(page, RICE)
    pay(page, "Enter")
    expect(page.locator("#sync-pending")).to_have_text("1")
    expect(page.locator("#sync-state")).to_have_text("Offline")
    page.keyboard.press("F1")
    expect(page.locator("#sync-state")).to_have_text("অফলাইন")
    expect(page.locator("[data-t=total]")).to_have_text("মোট")
    assert re.match(r"^৳\d", page.locator("#total").inner_text())
