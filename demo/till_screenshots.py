"""`make screenshots`: PNGs of the till in docs/img/, through Debian's chromium.

A throwaway data home with a small Bangla/English catalog; the real till server on a
loopback port; the page driven with the keys a cashier uses: signing in, two scans, a scale
label, a Bangla search, a weighed quantity (mid-sale), the payment step split between cash
and bKash, the sale's 80 mm receipt, a held cart in the English list of held carts, a refund
screen in Bangla, and the shift's Z report on screen and on 80 mm paper.
"""

import secrets
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

import uvicorn
from playwright.sync_api import expect, sync_playwright

from branch_client.identity import Identity
from branch_client.store import Store
from branch_client.till import server
from shared.models import CatalogEntry, CatalogPage, Product

OUT = Path(__file__).resolve().parent.parent / "docs" / "img"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
CATALOG = [
    Product(sku="RICE-MINI-5", name="চাল মিনিকেট ৫ কেজি", price=42000, barcode="8901234567890", unit="bag"),
    Product(sku="DAL-1KG", name="মসুর ডাল ১ কেজি", price=14050, barcode="8901234567891", vat_rate=Decimal(5)),
    Product(sku="OIL-TEER-2L", name="তীর সয়াবিন তেল ২ লিটার", price=38500, barcode="8941100500217", vat_rate=Decimal(5)),
    Product(sku="POTATO", name="আলু (খোলা)", price=4500, barcode="2000000000022", unit="kg"),
    Product(sku="TEA-ISP-400", name="ইস্পাহানি চা পাতা ৪০০ গ্রাম", price=21000, barcode="8941000000400", vat_rate=Decimal(15)),
    Product(sku="EGG-12", name="ডিম ১ ডজন", price=15600, barcode="2000000000039"),
    # Sold from the scale: its labels read 20 12345, the grams, a check digit.
    Product(sku="FISH-RUI", name="রুই মাছ", price=55000, barcode="2012345000001", unit="kg"),
]
FISH_LABEL = "2012345012509"  # 1.250 kg


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="till-shots-") as tmp:
        store = Store(Path(tmp) / "home")
        store.save_identity(Identity("dhaka-gulshan", "http://127.0.0.1:9", secrets.token_urlsafe(32)))
        store.apply_catalog_page(CatalogPage(entries=[CatalogEntry(version=i + 1, sku=p.sku, product=p)
                                                      for i, p in enumerate(CATALOG)], next_cursor=len(CATALOG), more=False), 0)
        store.set_setting("shop.name", "স্বপ্ন সুপারশপ")
        store.set_setting("shop.bin", "000123456-0101")
        store.add_cashier("Rahim", "4821")
        sock = server.bind(0)
        port = sock.getsockname()[1]
        app = server.create_app(store, port=port, token=secrets.token_urlsafe(32),
                                sync=server.BackgroundSync(lambda: "sync done"))
        uv = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
        thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not uv.started:
            time.sleep(0.02)
        try:
            shoot(f"http://127.0.0.1:{port}/")
        finally:
            uv.should_exit = True
            thread.join(10)
            store.close()


def scan(page, code: str, lines: int) -> None:
    page.keyboard.type(code, delay=4)
    page.keyboard.press("Enter")
    expect(page.locator("#cart-lines tr")).to_have_count(lines)


def shoot(url: str) -> None:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1366, "height": 768}, timezone_id="Asia/Dhaka")
        page = context.new_page()
        page.goto(url)
        expect(page.locator("#signin-name")).to_be_focused()
        page.keyboard.type("Rahim")
        page.keyboard.press("Enter")
        page.keyboard.type("4821")
        page.keyboard.press("Enter")
        expect(page.locator("#cashier-name")).to_have_text("Rahim")
        page.keyboard.press("F3")  # the shift opens with ৳2,000 counted into the drawer
        page.keyboard.press("s")
        expect(page.locator("#shift-cash")).to_be_focused()
        page.keyboard.type("2000")
        page.keyboard.press("Enter")
        expect(page.locator("#shift-panel")).to_be_hidden()
        page.keyboard.press("F1")  # Bangla
        scan(page, "8901234567890", 1)
        scan(page, "8901234567891", 2)
        scan(page, "8901234567891", 2)
        scan(page, FISH_LABEL, 3)
        page.keyboard.press("ArrowUp")
        page.keyboard.press("ArrowUp")  # the dal: ৳10 off two packets, with a reason
        page.keyboard.press("F7")
        page.keyboard.type("10")
        page.keyboard.press("Enter")
        page.keyboard.type("প্যাকেট ছেঁড়া")
        page.keyboard.press("Enter")
        expect(page.locator("#adjust-panel")).to_be_hidden()
        page.keyboard.press("F2")
        page.keyboard.insert_text("আলু")
        expect(page.locator("#results li")).to_have_count(1)
        page.keyboard.press("Enter")
        expect(page.locator("#cart-lines tr")).to_have_count(4)
        page.keyboard.press("*")
        page.keyboard.type("1.750")
        page.keyboard.press("Enter")
        expect(page.locator("#cart-lines input.qty").nth(3)).to_have_value("1.75")
        page.keyboard.press("F2")
        page.keyboard.insert_text("চা")
        expect(page.locator("#results li").first).to_be_visible()
        page.screenshot(path=str(OUT / "till-sale.png"))
        page.keyboard.press("Escape")

        page.keyboard.press("F4")
        expect(page.locator("#payment")).to_be_visible()
        page.keyboard.press("F11")  # a ৳1000 note: a part of the total in cash
        page.keyboard.press("Enter")
        expect(page.locator("#parts li")).to_have_count(1)
        page.keyboard.press("F8")  # the rest by bKash, with the customer's transaction id
        page.keyboard.type("9C4K7TQ2XA")
        expect(page.locator("#confirm")).to_be_enabled()
        page.screenshot(path=str(OUT / "till-payment.png"))
        with page.expect_popup() as popup:
            page.keyboard.press("Enter")
            expect(page.locator("#done-title")).to_be_visible()
            page.keyboard.press("Control+p")
        receipt = popup.value
        expect(receipt.locator("body")).to_have_attribute("data-ready", "1")
        receipt.set_viewport_size({"width": 320, "height": 600})  # about 80 mm at 96 dpi, plus margin
        receipt.locator("#receipt").screenshot(path=str(OUT / "till-receipt-80mm.png"))
        receipt.close()  # the till prints into one window of that name: the Z report opens anew
        page.screenshot(path=str(OUT / "till-recorded.png"))

        page.keyboard.press("F1")  # English
        scan(page, "8941000000400", 1)  # a second sale, by card
        page.keyboard.press("F4")
        page.keyboard.press("F7")
        page.keyboard.press("Enter")
        expect(page.locator("#done-title")).to_contain_text("recorded")
        scan(page, "8941100500217", 1)
        scan(page, FISH_LABEL, 2)
        page.keyboard.press("Insert")  # hold it
        expect(page.locator("#cart-lines tr")).to_have_count(0)
        page.keyboard.press("Insert")  # the list of held carts
        expect(page.locator("#held-rows tr")).to_have_count(1)
        page.screenshot(path=str(OUT / "till-held.png"))
        page.keyboard.press("Escape")

        page.keyboard.press("F1")  # Bangla: a refund of one packet of dal from sale 1, by its receipt number
        page.keyboard.press("F3")
        expect(page.locator("#sales-rows tr")).to_have_count(2)
        page.keyboard.type("1")
        page.keyboard.press("Enter")
        expect(page.locator("#refund-panel")).to_be_visible()
        page.keyboard.press("ArrowDown")
        page.keyboard.press("+")
        page.locator("#refund-reason").fill("প্যাকেট ফাটা")
        page.locator("#refund-reason").blur()
        page.screenshot(path=str(OUT / "till-refund.png"))
        page.keyboard.press("Escape")
        page.keyboard.press("F1")

        page.keyboard.press("F3")  # the end of the shift: ৳2,990 counted, ৳10 short
        page.keyboard.press("s")
        expect(page.locator("#shift-cash")).to_be_focused()
        page.keyboard.type("2990")
        page.keyboard.press("Enter")
        expect(page.locator("#z-report")).to_be_visible()
        page.screenshot(path=str(OUT / "till-z-report.png"))
        with page.expect_popup() as popup:
            page.keyboard.press("Control+p")
        z = popup.value
        expect(z.locator("body")).to_have_attribute("data-ready", "1")
        z.set_viewport_size({"width": 320, "height": 700})
        z.locator("#zprint").screenshot(path=str(OUT / "till-z-report-80mm.png"))
        browser.close()
    for name in ("till-sale.png", "till-payment.png", "till-recorded.png", "till-receipt-80mm.png", "till-held.png",
                 "till-refund.png", "till-z-report.png", "till-z-report-80mm.png"):
        print(OUT / name)


if __name__ == "__main__":
    main()
