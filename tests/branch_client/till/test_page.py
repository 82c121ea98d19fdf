"""The till page in real headless Chromium (Debian's, through Playwright) against a real server.

Keys are typed as a cashier and a keyboard-wedge scanner type them: the scanner is digits a
few milliseconds apart and Enter, sent to the page without any click first.
"""

import re
import uuid
from decimal import Decimal
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from branch_client.errors import CloudRefused, CloudUnreachable
from branch_client.identity import Identity
from tests.branch_client.fakes import entry, product
from tests.branch_client.fakes import page as catalog_page
from tests.branch_client.till.conftest import FISH_LABEL, start_till

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


def record_and_open_receipt(page):
    """In the payment step: Enter records the sale, Ctrl+P opens its receipt; wait for it to be filled in."""
    with page.expect_popup() as popup:
        page.keyboard.press("Enter")
        expect(page.locator("#done-title")).to_contain_text("recorded")
        page.keyboard.press("Control+p")
    receipt = popup.value
    expect(receipt.locator("body")).to_have_attribute("data-ready", "1")
    return receipt


def printed(page, key: str, part: str = "#receipt") -> str:
    """Press `key` (the receipt's or the Z report's print key): the text of the print page it opens."""
    with page.expect_popup() as popup:
        page.keyboard.press(key)
    window = popup.value
    expect(window.locator("body")).to_have_attribute("data-ready", "1")
    return window.locator(part).inner_text()


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
    assert sale.total == 42000 and [p.method.value for p in sale.payments] == ["cash"]
    expect(page.locator("#cart-lines tr")).to_have_count(0)
    scan(page, DAL)  # the next customer's first scan, without a click
    expect(page.locator("#cart-lines tr")).to_have_count(1)


def test_the_receipt_shows_branch_number_dhaka_time_lines_total_payment_and_change(page, till, browser):
    till.store.save_identity(Identity("dhaka-gulshan", "http://127.0.0.1:9", "k" * 43))
    scan(page, RICE)
    scan(page, DAL)
    pay(page, "F11")
    receipt = record_and_open_receipt(page)
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


# --- scale labels, quantities, held carts, cashiers, receipt header ---------------------------------


def test_a_scale_label_adds_its_weight_as_a_line_of_its_own_and_a_misread_one_adds_nothing(page, till):
    scan(page, FISH_LABEL, lines=1)
    scan(page, FISH_LABEL, lines=2)  # a second fish, weighed on its own
    assert cart(page) == [("রুই মাছ", "1.25"), ("রুই মাছ", "1.25")]
    expect(page.locator("#cart-lines input.qty").first).to_have_attribute("readonly", "")
    expect(page.locator("#total")).to_have_text("৳1,375.00")
    scan(page, FISH_LABEL[:12] + str((int(FISH_LABEL[12]) + 1) % 10))
    expect(page.locator("#message")).to_contain_text("wrong check digit")
    expect(page.locator("#cart-lines tr")).to_have_count(2)
    pay(page, "Enter")
    expect(page.locator("#done-title")).to_contain_text("Sale 1 recorded")
    assert [str(ln.qty) for ln in till.store.get_sale(1).sale.lines] == ["1.25", "1.25"]


def test_a_quantity_is_checked_by_the_sales_rule_with_its_hint(page):
    scan(page, "2000000000015", lines=1)  # atta, by the kilo
    page.keyboard.press("*")
    page.keyboard.type("1,5")
    page.keyboard.press("Enter")
    expect(page.locator("#message")).to_contain_text("write 1.5 with a dot")
    assert cart(page) == [("আটা (খোলা)", "1")]
    scan(page, DAL, lines=2)  # sold by the piece
    page.keyboard.press("*")
    page.keyboard.type("1.5")
    page.keyboard.press("Enter")
    expect(page.locator("#message")).to_contain_text("whole number")
    assert cart(page)[1] == ("মসুর ডাল ১ কেজি", "1")


def test_a_very_large_quantity_asks_again_and_enter_records_it(page, till):
    scan(page, DAL, lines=1)
    page.keyboard.press("*")
    page.keyboard.type("500")
    page.keyboard.press("Enter")
    expect(page.locator("#cart-lines input.qty")).to_have_value("500")
    pay(page, "F7")
    page.keyboard.press("Enter")
    expect(page.locator("#message")).to_contain_text("is a lot")
    expect(page.locator("#message")).to_contain_text("Enter: record it anyway")
    assert till.store.status()["sales_recorded"] == 0
    page.keyboard.press("Enter")
    expect(page.locator("#done-title")).to_contain_text("Sale 1 recorded")
    assert till.store.get_sale(1).sale.lines[0].qty == 500


def test_a_held_cart_survives_a_page_reload_and_a_till_restart_and_is_resumed_with_its_key(page, till, stocked_home):
    scan(page, RICE, lines=1)
    scan(page, FISH_LABEL, lines=2)
    expect(page.locator("#hold")).to_contain_text("Ins")
    expect(page.locator("#hold")).to_contain_text("Hold cart")
    page.keyboard.press("Insert")
    expect(page.locator("#message")).to_contain_text("Cart of 2 lines held")
    expect(page.locator("#cart-lines tr")).to_have_count(0)
    expect(page.locator("#hold")).to_contain_text("Held carts (1)")
    scan(page, DAL, lines=1)  # the next customer is served meanwhile
    pay(page, "Enter")
    expect(page.locator("#done-title")).to_contain_text("Sale 1 recorded")
    page.reload()
    expect(page.locator("#hold")).to_contain_text("Held carts (1)")

    # The till is stopped and started again: the held cart is in its database.
    again, stop = start_till(stocked_home)
    try:
        page.goto(again.url + "/")
        expect(page.locator("#hold")).to_contain_text("Held carts (1)")
        page.keyboard.press("Insert")
        expect(page.locator("#held-rows tr")).to_have_count(1)
        expect(page.locator("#held-rows tr")).to_contain_text("চাল ৫ কেজি +1")
        page.keyboard.press("Enter")
        expect(page.locator("#message")).to_contain_text("Held cart resumed: 2 lines")
        assert cart(page) == [("চাল ৫ কেজি", "1"), ("রুই মাছ", "1.25")]
        assert again.store.held_carts() == []
        pay(page, "Enter")
        expect(page.locator("#done-title")).to_contain_text("Sale 2 recorded")
        assert again.store.get_sale(2).sale.total == 42000 + 68750
    finally:
        stop()


def test_five_wrong_pins_lock_the_name_and_the_page_says_until_when_in_dhaka_time(page, till):
    till.store.add_cashier("Rahim", "4821")
    page.reload()
    page.fill("#signin-name", "Rahim")
    for left in (4, 3, 2, 1):
        page.fill("#signin-pin", "1111")
        page.keyboard.press("Enter")
        expect(page.locator("#signin-error")).to_have_text(
            f"wrong name or PIN; try again ({left} more before this name is locked for 5 minutes)")
    page.fill("#signin-pin", "1111")
    page.keyboard.press("Enter")
    expect(page.locator("#signin-error")).to_contain_text("Rahim is locked after too many wrong PINs: try again at ")
    until = till.store.sign_in_tries("Rahim").locked_until.astimezone(ZoneInfo("Asia/Dhaka"))
    expect(page.locator("#signin-error")).to_contain_text(until.strftime("%H:%M:%S"))
    page.fill("#signin-pin", "4821")  # the right PIN waits for the lock too
    page.keyboard.press("Enter")
    expect(page.locator("#signin-error")).to_contain_text("ask the manager to unlock")
    expect(page.locator("#signin-panel")).to_be_visible()
    till.store.unlock_cashier("Rahim")
    page.fill("#signin-pin", "4821")
    page.keyboard.press("Enter")
    expect(page.locator("#cashier-name")).to_have_text("Rahim")


def test_a_cashier_signs_in_with_name_and_pin_is_shown_recorded_and_signs_out(page, till):
    till.store.add_cashier("Rahim", "4821")
    page.reload()
    expect(page.locator("#signin-panel")).to_be_visible()
    expect(page.locator("#signin-name")).to_be_focused()
    page.keyboard.press("F1")  # Bangla, on the sign-in screen too
    expect(page.locator("[data-t=sign_in_title]")).to_have_text("ক্যাশ কাউন্টারে সাইন ইন")
    page.keyboard.press("F1")
    page.locator("#signin-name").focus()
    page.keyboard.type("rahim")
    page.keyboard.press("Enter")
    page.keyboard.type("1111")
    page.keyboard.press("Enter")
    expect(page.locator("#signin-error")).to_contain_text("wrong name or PIN")
    page.keyboard.type("4821")
    page.keyboard.press("Enter")
    expect(page.locator("#signin-panel")).to_be_hidden()
    expect(page.locator("#cashier-name")).to_have_text("Rahim")
    expect(page.locator("#sign-out")).to_contain_text("Ctrl")
    scan(page, RICE, lines=1)  # the scanner works at once after signing in
    pay(page, "Enter")
    expect(page.locator("#done-title")).to_contain_text("Sale 1 recorded")
    assert till.store.get_sale(1).cashier == "Rahim"
    page.reload()  # a reload keeps the cashier signed in
    expect(page.locator("#cashier-name")).to_have_text("Rahim")
    page.keyboard.press("Control+q")
    expect(page.locator("#signin-panel")).to_be_visible()
    expect(page.locator("#cashier-wrap")).to_be_hidden()


def test_the_receipt_shows_the_shop_name_bin_cashier_and_time_zone(page, till):
    till.store.add_cashier("Rahim", "4821")
    till.store.set_setting("shop.name", "স্বপ্ন সুপারশপ")
    till.store.set_setting("shop.bin", "000123456-0101")
    page.reload()
    page.fill("#signin-name", "Rahim")
    page.fill("#signin-pin", "4821")
    page.keyboard.press("Enter")
    expect(page.locator("#cashier-name")).to_have_text("Rahim")
    scan(page, RICE, lines=1)
    pay(page)
    receipt = record_and_open_receipt(page)
    text = receipt.locator("#receipt").inner_text()
    for part in ("স্বপ্ন সুপারশপ", "BIN: 000123456-0101", "Cashier: Rahim", "Times in Asia/Dhaka"):
        assert part in text, part


# --- the payment step: split payments that must add up ---------------------------------------------


def test_a_split_payment_of_cash_and_bkash_must_add_up_before_it_records(page, till):
    scan(page, RICE)
    scan(page, DAL, lines=2)  # ৳560.50
    pay(page)
    expect(page.locator("#remaining")).to_have_text("৳560.50")
    page.keyboard.type("300")  # the customer has ৳300 in cash
    expect(page.locator("#add-part")).to_be_visible()
    expect(page.locator("#confirm")).to_be_disabled()
    page.keyboard.press("Enter")  # not enough for the whole: the cash is a part of its own
    expect(page.locator("#parts li")).to_have_count(1)
    expect(page.locator("#parts li").first).to_contain_text("৳300.00")
    expect(page.locator("#remaining")).to_have_text("৳260.50")
    page.keyboard.press("F8")  # the rest by bKash
    expect(page.locator("#pay-amount")).to_have_value("260.50")
    expect(page.locator("button.wallet.on")).to_have_text(re.compile("bKash"))
    page.keyboard.press("Enter")  # no transaction id yet: nothing is sent
    expect(page.locator("#pay-error")).to_contain_text("transaction id")
    assert till.store.status()["sales_recorded"] == 0
    expect(page.locator("#txn-id")).to_be_focused()
    page.keyboard.type("8N7A6D5C")
    expect(page.locator("#confirm")).to_be_enabled()
    with page.expect_request("**/api/sales") as sent:
        page.keyboard.press("Enter")
    expect(page.locator("#done-title")).to_contain_text("Sale 1 recorded")
    assert sent.value.post_data_json["payments"] == [
        {"method": "cash", "amount": 30000, "tendered": 30000},
        {"method": "mobile", "amount": 26050, "wallet": "bkash", "txn_id": "8N7A6D5C"},
    ]


def test_keys_pressed_while_the_payment_step_waits_for_its_price_are_taken_as_payment_keys(page, till):
    scan(page, RICE)
    # F4 and F8 in one task of the page: F8 arrives before the payment step has opened.
    page.evaluate("""() => ["F4", "F8", "7"].forEach((key) =>
        document.dispatchEvent(new KeyboardEvent("keydown", { key, bubbles: true })))""")
    expect(page.locator("#payment")).to_be_visible()
    expect(page.locator("button.wallet.on")).to_have_text(re.compile("bKash"))
    expect(page.locator("#txn-id")).to_have_value("7")  # the next key typed into the focused field
    expect(page.locator("#adjust-panel")).to_be_hidden()  # not the cart's sale discount
    assert till.store.status()["sales_recorded"] == 0


def test_f8_again_switches_the_wallet_to_nagad_and_esc_goes_back_to_the_cart(page):
    scan(page, RICE, lines=1)
    pay(page, "F8")
    expect(page.locator("#wallet-box")).to_be_visible()
    page.keyboard.press("F8")
    expect(page.locator("button.wallet.on")).to_have_text(re.compile("Nagad"))
    page.keyboard.press("Escape")
    expect(page.locator("#payment")).to_be_hidden()
    expect(page.locator("#cart-lines tr")).to_have_count(1)
    scan(page, RICE)  # the scanner works again at once
    expect(page.locator("#cart-lines input.qty")).to_have_value("2")


def test_a_card_amount_over_what_is_left_is_refused_and_the_notes_add_to_the_cash_tendered(page):
    scan(page, RICE, lines=1)  # ৳420.00
    pay(page, "F7")
    page.keyboard.press("Control+a")
    page.keyboard.type("500")
    expect(page.locator("#pay-error")).to_contain_text("More than is left to pay (৳420.00)")
    expect(page.locator("#confirm")).to_be_disabled()
    page.keyboard.press("F9")  # a ৳100 note: back to cash
    page.keyboard.press("F10")  # and a ৳500 note
    expect(page.locator("#tendered")).to_have_value("600.00")
    expect(page.locator("#change")).to_have_text("৳180.00")
    expect(page.locator("#confirm")).to_be_enabled()


def test_the_background_push_line_says_in_bangla_that_head_office_cannot_be_reached(browser, stocked_home):
    def unreachable():
        raise CloudUnreachable("the cloud cannot be reached")
    offline, stop = start_till(stocked_home, run_sync=unreachable)
    context = browser.new_context(viewport={"width": 1280, "height": 800}, timezone_id="Asia/Dhaka")
    try:
        page = context.new_page()
        page.goto(offline.url + "/")
        expect(page.locator("#cart-empty")).to_be_visible()
        scan(page, RICE, lines=1)
        pay(page, "Enter")  # recorded: the background push starts and finds head office out of reach
        expect(page.locator("#sync-message")).to_contain_text("head office cannot be reached", timeout=30_000)
        page.keyboard.press("F1")
        expect(page.locator("#sync-message")).to_contain_text("হেড অফিসে পৌঁছানো যাচ্ছে না")
        expect(page.locator("#sync-message")).to_contain_text("সেকেন্ড পরে আবার চেষ্টা")
    finally:
        context.close()
        stop()



def test_a_refused_push_and_the_last_error_are_worded_in_bangla_by_their_codes(browser, stocked_home):
    def revoked():
        raise CloudRefused("branch_revoked", "head office revoked this branch", 403)
    refused, stop = start_till(stocked_home, run_sync=revoked)
    refused.store.record_error("cloud refused (branch_revoked): head office revoked this branch", code="branch_revoked")
    context = browser.new_context(viewport={"width": 1280, "height": 800}, timezone_id="Asia/Dhaka")
    try:
        page = context.new_page()
        page.goto(refused.url + "/")
        expect(page.locator("#cart-empty")).to_be_visible()
        page.keyboard.press("F1")
        expect(page.locator("#sync-error")).to_have_text("হেড অফিস এই শাখার পাঠানো বন্ধ করেছে: হেড অফিসে ফোন করুন")
        scan(page, RICE, lines=1)
        pay(page, "Enter")  # recorded: the background push is refused
        expect(page.locator("#sync-message")).to_contain_text("হেড অফিস এই শাখার পাঠানো বন্ধ করেছে", timeout=30_000)
        expect(page.locator("#sync-message")).to_contain_text("সেকেন্ড পরে আবার চেষ্টা")
        page.keyboard.press("F1")
        expect(page.locator("#sync-error")).to_have_text("head office has stopped this branch from sending: call head office")
    finally:
        context.close()
        stop()


# --- the cart priced by the server: VAT per line, discounts and price overrides with reasons -------

OIL = "8941100500217"


def stock_vat_product(store) -> None:
    """A product with VAT at 15% (prices include VAT): ৳385.00, of which ৳50.22 is VAT."""
    store.apply_catalog_page(catalog_page(entry(100, product("OIL-2L", 38500, "সয়াবিন তেল ২ লিটার", barcode=OIL,
                                                             vat_rate=Decimal("15")))), applied_through=0)


def adjust(page, key: str, value: str, reason: str) -> None:
    """F6 (price), F7 (line discount) or F8 (sale discount): the value, Enter, the reason, Enter."""
    page.keyboard.press(key)
    expect(page.locator("#adjust-value")).to_be_focused()
    page.keyboard.type(value)
    page.keyboard.press("Enter")
    expect(page.locator("#adjust-reason")).to_be_focused()
    page.keyboard.type(reason)
    page.keyboard.press("Enter")
    expect(page.locator("#adjust-panel")).to_be_hidden()


def test_each_cart_line_shows_its_vat_part_and_the_total_the_vat_it_includes(page, till):
    stock_vat_product(till.store)
    scan(page, OIL, lines=1)
    scan(page, RICE, lines=2)
    expect(page.locator("#cart-lines tr").first.locator(".vat")).to_have_text("incl. VAT 15%: ৳50.22")
    expect(page.locator("#cart-lines tr").nth(1).locator(".vat")).to_have_text("incl. VAT 0%: ৳0.00")
    expect(page.locator("#vat-total")).to_have_text("incl. VAT ৳50.22")
    expect(page.locator("#total")).to_have_text("৳805.00")


def test_a_line_discount_in_percent_and_a_price_override_ask_a_reason_and_are_recorded(page, till):
    scan(page, RICE)
    scan(page, DAL, lines=2)
    page.keyboard.press("ArrowUp")  # the rice
    page.keyboard.press("F7")
    page.keyboard.type("10%")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")  # no reason: refused, and the dialog stays
    expect(page.locator("#adjust-error")).to_contain_text("reason")
    page.keyboard.type("torn bag")
    page.keyboard.press("Enter")
    expect(page.locator("#adjust-panel")).to_be_hidden()
    expect(page.locator("#cart-lines tr").first.locator(".disc")).to_contain_text("−৳42.00 · torn bag")
    page.keyboard.press("ArrowDown")  # the dal
    adjust(page, "F6", "130", "price match")
    expect(page.locator("#cart-lines tr").nth(1)).to_contain_text("price changed, list ৳140.50 · price match")
    expect(page.locator("#total")).to_have_text("৳508.00")  # 420 - 42 + 130
    pay(page, "Enter")
    expect(page.locator("#done-title")).to_contain_text("Sale 1 recorded")
    sale = till.store.get_sale(1).sale
    assert sale.total == 50800
    assert (sale.lines[0].discount.kind.value, sale.lines[0].discount.amount, sale.lines[0].discount.reason) == ("percent", 4200, "torn bag")
    assert (sale.lines[1].unit_price, sale.lines[1].list_price) == (13000, 14050)


def test_a_sale_discount_is_taken_off_the_total_and_esc_leaves_the_cart_as_it_was(page, till):
    scan(page, RICE, lines=1)
    page.keyboard.press("F8")
    page.keyboard.type("50")
    page.keyboard.press("Escape")
    expect(page.locator("#total")).to_have_text("৳420.00")
    adjust(page, "F8", "20", "regular customer")
    expect(page.locator("#sale-discount")).to_contain_text("−৳20.00 · regular customer")
    expect(page.locator("#total")).to_have_text("৳400.00")
    pay(page, "Enter")
    expect(page.locator("#done-title")).to_contain_text("Sale 1 recorded")
    sale = till.store.get_sale(1).sale
    assert (sale.total, sale.discount.amount, sale.discount.reason) == (40000, 2000, "regular customer")


def test_a_split_cash_and_bkash_sale_is_stored_with_tendered_change_and_transaction_id_and_printed(page, till):
    stock_vat_product(till.store)
    scan(page, OIL, lines=1)  # ৳385.00
    pay(page, "F9", "F9")  # ৳200 in cash
    page.keyboard.press("Enter")
    page.keyboard.press("F8")
    page.keyboard.type("8N7A6D5C")
    receipt = record_and_open_receipt(page)
    payments = till.store.get_sale(1).sale.payments
    assert [(p.method.value, p.amount, p.tendered, p.wallet and p.wallet.value, p.txn_id) for p in payments] == [
        ("cash", 20000, 20000, None, None), ("mobile", 18500, None, "bkash", "8N7A6D5C")]
    text = receipt.locator("#receipt").inner_text()
    for part in ("VAT 15% ৳50.22", "VAT included", "Payment: Cash", "৳200.00", "Payment: bKash", "৳185.00", "8N7A6D5C"):
        assert part in text, part


def test_the_change_of_a_cash_payment_is_stored_and_shown_on_a_reprint(page, till):
    scan(page, RICE, lines=1)
    pay(page, "F10")  # ৳500 for ৳420
    page.keyboard.press("Enter")
    expect(page.locator("#done-change")).to_have_text("৳80.00")
    assert till.store.get_sale(1).sale.payments[0].change == 8000
    page.keyboard.press("F3")
    expect(page.locator("#sales-rows tr")).to_have_count(1)
    text = printed(page, "r")
    for part in ("Reprint", "Tendered", "৳500.00", "Change", "৳80.00"):
        assert part in text, part


# --- refund and shift --------------------------------------------------------------------------------


def test_a_refund_of_one_line_by_its_scanned_receipt_number_at_most_what_is_refundable(page, till):
    scan(page, RICE)
    scan(page, RICE)
    scan(page, DAL, lines=2)
    pay(page, "Enter")
    expect(page.locator("#done-title")).to_contain_text("Sale 1 recorded")
    page.keyboard.press("F3")
    scan(page, "1")  # the receipt's number, typed or scanned
    expect(page.locator("#refund-panel")).to_be_visible()
    expect(page.locator("#refund-title")).to_have_text("Refund of sale 1")
    page.keyboard.press("+")
    page.keyboard.press("+")
    page.keyboard.press("+")  # only 2 were sold
    expect(page.locator("#refund-error")).to_contain_text("At most 2")
    page.keyboard.press("-")
    expect(page.locator("#refund-rows input.refund-qty").first).to_have_value("1")
    expect(page.locator("#refund-total")).to_have_text("৳420.00")
    page.keyboard.press("Enter")  # to the reason
    expect(page.locator("#refund-reason")).to_be_focused()
    page.keyboard.type("wrong rice")
    page.keyboard.press("Enter")
    expect(page.locator("#message")).to_contain_text("Sale 1 refunded by number 2: pay back ৳420.00")
    refund = till.store.get_sale(2).sale
    assert [(r.line, r.qty, r.amount) for r in refund.returns] == [(1, 1, 42000)]
    assert refund.payments[0].method.value == "cash" and refund.payments[0].amount == -42000
    page.keyboard.press("F3")
    expect(page.locator("#sales-rows tr")).to_have_count(2)
    page.keyboard.press("ArrowDown")  # sale 1, under its refund
    page.keyboard.press("t")
    expect(page.locator("#refund-rows tr").first.locator("td").nth(3)).to_have_text("1")  # one rice can still come back


def shift_key(page, state: str, amount: str) -> None:
    """Sales list, S (the shift), wait for it to say `state`, type the float or counted cash, Enter."""
    page.keyboard.press("F3")
    page.keyboard.press("s")
    expect(page.locator("#shift-state")).to_contain_text(state)
    page.keyboard.type(amount)
    page.keyboard.press("Enter")


def test_a_shift_opens_with_a_float_and_closes_with_the_z_report_of_its_sales_and_cash(page, till):
    shift_key(page, "No shift is open.", "1000")
    expect(page.locator("#message")).to_contain_text("Shift open with a float of ৳1,000.00")
    scan(page, RICE, lines=1)
    pay(page, "F10")
    page.keyboard.press("Enter")
    expect(page.locator("#done-title")).to_contain_text("Sale 1 recorded")
    scan(page, DAL, lines=1)
    pay(page, "F7", "Enter")  # by card
    expect(page.locator("#done-title")).to_contain_text("Sale 2 recorded")
    page.keyboard.press("F3")
    page.keyboard.press("s")
    expect(page.locator("#shift-state")).to_contain_text("float ৳1,000.00")
    page.keyboard.type("1400")  # ৳20 short
    page.keyboard.press("Enter")
    z = page.locator("#z-report")
    expect(z).to_be_visible()
    rows = {r.split("\t")[0]: r.split("\t")[1] for r in z.locator("tr").all_inner_texts()}
    assert rows["Sales (2), before discounts"] == "৳560.50"
    assert rows["Taken by Cash"] == "৳420.00" and rows["Taken by Card"] == "৳140.50"
    assert rows["Cash expected"] == "৳1,420.00" and rows["Cash counted"] == "৳1,400.00"
    assert rows["Short"] == "-৳20.00"
    text = printed(page, "Control+p", "#zprint")
    for part in ("Z report", "Cash expected", "৳1,420.00", "Short", "-৳20.00"):
        assert part in text, part


def test_a_discount_the_sale_rules_refuse_keeps_the_dialog_open_with_why_and_the_cart_as_it_was(page):
    scan(page, RICE, lines=1)
    page.keyboard.press("F7")
    page.keyboard.type("150%")
    page.keyboard.press("Enter")
    page.keyboard.type("mistake")
    page.keyboard.press("Enter")
    expect(page.locator("#adjust-error")).to_contain_text("at most 100")
    expect(page.locator("#adjust-panel")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#total")).to_have_text("৳420.00")
    expect(page.locator("#cart-lines .disc")).to_have_count(0)


def test_every_word_of_the_till_has_a_bangla_and_an_english_version(page):
    missing = page.evaluate("""() => {
        const w = window.TILL_WORDS, en = Object.keys(w.en), bn = Object.keys(w.bn);
        return {bn: en.filter((k) => !w.bn[k]), en: bn.filter((k) => !w.en[k]),
                shown: [...document.querySelectorAll('[data-t]')].map((el) => el.dataset.t).filter((k) => !w.en[k] || !w.bn[k])};
    }""")
    assert missing == {"bn": [], "en": [], "shown": []}


def test_a_held_line_comes_back_with_its_discount_and_changed_price(page, till):
    scan(page, RICE)
    scan(page, DAL, lines=2)
    page.keyboard.press("ArrowUp")
    adjust(page, "F7", "10%", "torn bag")
    page.keyboard.press("ArrowDown")
    adjust(page, "F6", "130", "price match")
    expect(page.locator("#total")).to_have_text("৳508.00")
    page.keyboard.press("Insert")
    expect(page.locator("#cart-lines tr")).to_have_count(0)
    page.keyboard.press("Insert")
    expect(page.locator("#held-rows tr")).to_have_count(1)
    page.keyboard.press("Enter")
    expect(page.locator("#cart-lines tr")).to_have_count(2)
    expect(page.locator("#total")).to_have_text("৳508.00")
    expect(page.locator("#cart-lines tr").first.locator(".disc")).to_contain_text("torn bag")
    expect(page.locator("#cart-lines tr").nth(1)).to_contain_text("price match")


def test_a_held_cart_comes_back_with_its_sale_discount_and_the_list_shows_its_discounted_total(page):
    scan(page, RICE, lines=1)
    adjust(page, "F8", "20", "regular customer")
    expect(page.locator("#total")).to_have_text("৳400.00")
    page.keyboard.press("Insert")
    expect(page.locator("#cart-lines tr")).to_have_count(0)
    page.keyboard.press("Insert")
    expect(page.locator("#held-rows tr").first).to_contain_text("৳400.00")
    page.keyboard.press("Enter")
    expect(page.locator("#cart-lines tr")).to_have_count(1)
    expect(page.locator("#total")).to_have_text("৳400.00")
    expect(page.locator("#sale-discount")).to_contain_text("regular customer")


def test_the_refund_amount_is_the_servers_quote_and_its_refusal_shows_before_confirming(page, till):
    # 3 kg of ATTA at a changed price of ৳1/kg: a gram of it pays back less than a paisa.
    with till.client() as c:
        c.post("/api/sales", headers=till.headers(), json={
            "key": uuid.uuid4().hex, "payment": "cash",
            "lines": [{"sku": "ATTA", "qty": "3", "price": 100, "price_reason": "end of sack"}]})
    asked = []
    page.on("request", lambda r: asked.append(r.url) if r.url.endswith("/refund/quote") else None)
    page.keyboard.press("F3")
    scan(page, "1")
    expect(page.locator("#refund-panel")).to_be_visible()
    qty = page.locator("#refund-rows input.refund-qty").first
    qty.fill("0.001")
    qty.press("Enter")
    expect(page.locator("#refund-error")).to_contain_text("too little to pay back")
    expect(page.locator("#refund-go")).to_be_disabled()
    qty.fill("1.5")
    qty.press("Enter")
    expect(page.locator("#refund-total")).to_have_text("৳1.50")
    expect(page.locator("#refund-go")).to_be_enabled()
    assert asked  # the amounts came from the quote route


def test_the_printed_z_report_takes_its_shop_header_from_the_z_answer_alone(page, till):
    till.store.set_setting("shop.name", "স্বপ্ন Gulshan")
    till.store.set_setting("shop.bin", "000123456-0101")
    shift_key(page, "No shift is open.", "0")
    expect(page.locator("#message")).to_contain_text("Shift open")
    expect(page.locator("#shift-panel")).to_be_hidden()
    page.context.route(re.compile(r"/api/sales/"), lambda route: route.abort())  # the print page must not need them
    shift_key(page, "float", "0")
    expect(page.locator("#z-report")).to_be_visible()
    text = printed(page, "Control+p", "#zprint")
    assert "স্বপ্ন Gulshan" in text and "000123456-0101" in text


def test_the_payment_steps_esc_hint_is_in_sight_at_the_foot_of_a_split_payment_on_a_1366_by_768_screen(browser, till):
    context = browser.new_context(viewport={"width": 1366, "height": 768}, timezone_id="Asia/Dhaka")
    try:
        page = context.new_page()
        page.goto(till.url + "/")
        expect(page.locator("#cart-empty")).to_be_visible()
        page.keyboard.press("F1")  # Bangla: the longer words
        for n, code in enumerate((RICE, DAL, FISH_LABEL, "2000000000015"), 1):
            scan(page, code, lines=n)
        pay(page, "F11", "Enter")  # a part in cash
        expect(page.locator("#parts li")).to_have_count(1)
        page.keyboard.press("F8")  # the rest by bKash, with its transaction id
        expect(page.locator("#txn-box")).to_be_visible()
        hint, panel = page.locator("#payment .hint").bounding_box(), page.locator("section.right").bounding_box()
        assert hint["y"] + hint["height"] <= panel["y"] + panel["height"]
        assert page.locator("section.right").evaluate("(el) => el.scrollHeight <= el.clientHeight")  # nothing to scroll to
    finally:
        context.close()
