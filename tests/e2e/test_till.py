"""End to end: `branchsync till` as a process, driven in Debian's chromium, synced to the dev host and Azurite.

What the cashier rings up at the till (scans, a scale's weight label, a Bangla search, cash with
change, a void with a reason; a double-clicked submit) is what head office's sales export holds after "sync now".
"""

import json
import re
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from branch_client.barcodes import check_digit
from headoffice.stand_ins import free_port
from tests.e2e.test_console_scripts import cli, enrolled_branch, exported, wait_applied

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]
BIN = Path(sys.executable).parent


@pytest.fixture
def env(admin_env, cloud):
    return {**admin_env, "BRANCHSYNC_URL": cloud.url}


def start_till(home: Path, env: dict, *options: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([str(BIN / "branchsync"), "--home", str(home), "till", "--port", str(port), "--no-browser",
                             *options],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "api/status", timeout=1)
            return proc, url
        except httpx.TransportError:
            if proc.poll() is not None:
                raise AssertionError(f"till exited {proc.returncode}: {proc.stderr.read()}")
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the till did not answer within 20 s")


@contextmanager
def till_page(browser, home: Path, env: dict, *options: str):
    """`branchsync till` as a process, and a fresh browser page open on it; both end with the block."""
    proc, url = start_till(home, env, *options)
    try:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(url)
            yield page
        finally:
            context.close()
    finally:
        proc.terminate()
        proc.wait(10)


def sync_now(page, branch_name: str, through: int, env: dict) -> None:
    """F5 until head office has applied the branch's events `through` and the page shows none waiting."""
    page.keyboard.press("F5")
    wait_applied(branch_name, through, env)
    page.keyboard.press("F5")  # the pull after the apply carries the acks
    expect(page.locator("#sync-pending")).to_have_text("0", timeout=30_000)


def test_what_the_cashier_rings_up_at_the_till_reaches_head_office_exactly(tmp_path, env, branch_name, browser):
    rice, dal = f"RICE-{branch_name}", f"DAL-{branch_name}"
    # Every test shares one cloud catalog: this test's barcodes and the Bangla word it searches
    # for are its own, so another test's products cannot answer the scan or the search.
    rice_code, dal_code = (f"{int(branch_name[2:], 16) % 10**11:011d}{d}" for d in ("10", "11"))
    # Fish from the scale: its labels are 20, its item code, the grams and a check digit.
    fish, item = f"FISH-{branch_name}", f"{int(branch_name[2:], 16) % 10**5:05d}"
    fish_base, fish_label = (body + check_digit(body) for body in (f"20{item}00000", f"20{item}01250"))
    (tmp_path / "c.csv").write_text(f"sku,name,price,unit,barcode\n{rice},চাল ৫ কেজি,420,bag,{rice_code}\n"
                                    f"{dal},খেসারি ডাল ১ কেজি,140.50,pcs,{dal_code}\n"
                                    f"{fish},রুই মাছ,550,kg,{fish_base}\n", encoding="utf-8")
    cli("branchsync-admin", "catalog", "import", tmp_path / "c.csv", env=env)
    home = enrolled_branch(tmp_path, branch_name, env)
    cli("branchsync", "--home", home, "sync", env=env)

    # Without the push after each sale, so the sales wait for "sync now" and the count of
    # sales waiting is the page's to show.
    with till_page(browser, home, env, "--no-auto-push") as page:
        expect(page.locator("#branch")).to_have_text(branch_name)
        expect(page.locator("#sync-state")).to_have_text("Online")

        # sale 1: two scans, a weight label and a Bangla search, cash 2000 -> change
        for code, lines in ((rice_code, 1), (dal_code, 2), (fish_label, 3)):
            page.keyboard.type(code, delay=4)
            page.keyboard.press("Enter")
            expect(page.locator("#cart-lines tr")).to_have_count(lines)
        page.keyboard.press("F2")
        page.keyboard.insert_text("খেসারি")
        expect(page.locator("#results li.hl")).to_contain_text("খেসারি ডাল")
        page.keyboard.press("Enter")
        expect(page.locator("#cart-lines tr").nth(1).locator("input.qty")).to_have_value("2")
        page.keyboard.press("F4")
        expect(page.locator("#payment")).to_be_visible()
        page.keyboard.press("F11")
        page.keyboard.press("F11")
        expect(page.locator("#change")).to_have_text("৳611.50")  # 2000 - (420 + 2 x 140.50 + 1.25 x 550)
        page.keyboard.press("Enter")
        expect(page.locator("#done-title")).to_contain_text("Sale 1 recorded")

        # sale 2: mobile wallet, submitted with a double click
        page.keyboard.type(dal_code, delay=4)
        page.keyboard.press("Enter")
        expect(page.locator("#cart-lines tr")).to_have_count(1)
        page.keyboard.press("F4")
        expect(page.locator("#payment")).to_be_visible()
        page.keyboard.press("F8")  # bKash, with the customer's transaction id
        expect(page.locator("#txn-id")).to_be_focused()
        page.keyboard.type("8N7A6D5C")
        page.locator("#confirm").dblclick()
        expect(page.locator("#done-title")).to_contain_text("Sale 2 recorded")

        # void sale 1 with a reason
        page.keyboard.press("F3")
        expect(page.locator("#sales-rows tr")).to_have_count(2)
        page.keyboard.press("ArrowDown")
        page.keyboard.press("v")
        page.keyboard.type("wrong customer")
        page.keyboard.press("Enter")
        expect(page.locator("#message")).to_contain_text("Sale 1 voided by number 3")
        page.keyboard.press("Escape")
        expect(page.locator("#sync-pending")).to_have_text("3")

        sync_now(page, branch_name, 3, env)
        expect(page.locator("#sync-state")).to_have_text("Online")

    sales = [s["sale"] for s in exported(branch_name, env)]
    first = 42000 + 2 * 14050 + 68750
    assert [(s["seq"], s["kind"], s["total"], [p["method"] for p in s["payments"]], s["cashier"]) for s in sales] == [
        (1, "sale", first, ["cash"], "manager"), (2, "sale", 14050, ["mobile"], "manager"),
        (3, "void", -first, ["cash"], "manager")]
    assert [(line["sku"], line["qty"]) for line in sales[0]["lines"]] == [(rice, "1"), (dal, "2"), (fish, "1.25")]
    assert sales[2]["voids"] == 1
    status = json.loads(cli("branchsync", "--home", home, "status", "--json", env=env).stdout)
    assert status["pending"] == 0 and status["last_error"] is None and re.match(r"\d{4}-", status["last_sync_ok"])


def pushed_by(syncs: list[subprocess.CompletedProcess]) -> int:
    """Sales the `branchsync sync` runs say they pushed."""
    return sum(int(n) for c in list(syncs) for n in re.findall(r"pushed (\d+) sales", c.stdout))


def lock_holder(home: Path) -> int | None:
    """The process holding the branch's sync lock, from the owner file beside it."""
    try:
        return json.loads((home / "sync.lock.owner").read_text(encoding="utf-8"))["process"]["pid"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def wait_for_scheduled_holder(home: Path, till_pid: int) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        holder = lock_holder(home)
        if holder not in (None, till_pid):
            return holder
        time.sleep(0.01)
    raise AssertionError("no scheduled sync took the sync lock within 60 s")


def test_the_tills_own_pushes_and_a_scheduled_sync_running_beside_them_apply_every_sale_exactly_once(
        tmp_path, env, branch_name, cloud):
    sku = f"TEA-{branch_name}"
    (tmp_path / "c.csv").write_text(f"sku,name,price,unit\n{sku},চা পাতা ৪০০ গ্রাম,210,pcs\n", encoding="utf-8")
    cli("branchsync-admin", "catalog", "import", tmp_path / "c.csv", env=env)
    home = enrolled_branch(tmp_path, branch_name, env)
    cli("branchsync", "--home", home, "sync", env=env)

    proc, url = start_till(home, env)
    scheduled: list[subprocess.CompletedProcess] = []
    stop = threading.Event()

    def scheduled_syncs():  # what Task Scheduler runs, again and again while the cashier sells
        while not stop.is_set():
            scheduled.append(cli("branchsync", "--home", home, "sync", env=env, check=False))

    beside = threading.Thread(target=scheduled_syncs, daemon=True)
    try:
        with httpx.Client(base_url=url, timeout=30) as till:
            token = re.search(r'name="till-token" content="([^"]+)"', till.get("/").text).group(1)
            beside.start()
            # In each round a sale while nobody holds the sync lock, then two while a scheduled
            # sync holds it (its owner file names another process than the till's), so each side
            # finds the other at the lock: the till's push then waits a few seconds, and the
            # next scheduled sync or the till sends what is left.
            recorded = 0

            def sell() -> None:
                nonlocal recorded
                r = till.post("/api/sales", headers={"X-Till-Token": token}, json={
                    "key": uuid.uuid4().hex, "payment": "cash", "lines": [{"sku": sku, "qty": "1"}]})
                assert r.status_code == 201, r.text
                recorded += 1

            for _ in range(4):
                while lock_holder(home) is not None:
                    time.sleep(0.01)
                sell()
                holder = wait_for_scheduled_holder(home, proc.pid)
                sell()
                sell()
                while lock_holder(home) == holder:  # this scheduled sync ends before the next round
                    time.sleep(0.02)
            stop.set()
            beside.join(120)
            sell()  # with the scheduled syncs over, these two only the till can send
            sell()
            # No "sync now": the till's own push after the last sale delivers what is left.
            mine = wait_applied(branch_name, recorded, env, timeout=120)
    finally:
        stop.set()
        proc.terminate()
        proc.wait(10)

    assert mine["applied_through"] == recorded
    # 0: the scheduled sync ran; 4: the till's push held the lock, so it left (nothing to do).
    assert {c.returncode for c in scheduled} <= {0, 4}, [c.stderr for c in scheduled if c.returncode not in (0, 4)]
    assert any(c.returncode == 0 for c in scheduled)
    by_schedule = pushed_by(scheduled)
    assert 0 < by_schedule < recorded  # both sides sent sales; the till sent the rest itself
    sales = [s["sale"] for s in exported(branch_name, env)]
    assert [s["seq"] for s in sales] == list(range(1, recorded + 1))
    assert all(s["total"] == 21000 for s in sales)
    # Neither side sent a sale the other had sent: the cloud saw no batch twice.
    log = cloud.log.read_text(encoding="utf-8")
    applied = re.findall(rf"applied batch branch={re.escape(branch_name)} seqs=\S+ new=(\d+) duplicates=(\d+)", log)
    assert f"duplicate batch branch={branch_name} " not in log
    assert sum(int(new) for new, _ in applied) == recorded and all(dup == "0" for _, dup in applied)
