"""The till's HTTP server against a real uvicorn on loopback and a real SQLite store.

Security (Host check, per-launch token, no CORS, no secret) and the routes as adapters over
the store.
"""

import asyncio
import concurrent.futures
import re
import socket
import threading
import uuid
from datetime import datetime, timezone

import httpx

from branch_client.identity import Identity
from branch_client.till import server
from tests.branch_client.steps import sell_and_acknowledge, sqlite_steps
from tests.branch_client.till.conftest import FISH_LABEL, start_till


def _sale(till, key=None, lines=None, payment="cash"):
    with till.client() as c:
        return c.post("/api/sales", headers=till.headers(), json={
            "key": key or uuid.uuid4().hex, "payment": payment,
            "lines": [{"sku": "RICE-5KG", "qty": "1"}] if lines is None else lines})


def test_a_request_with_another_host_header_is_refused_so_dns_rebinding_cannot_reach_the_till(till):
    with till.client() as c:
        for host in ("evil.example:%d" % till.port, "localhost:%d" % till.port, "127.0.0.1", "127.0.0.1:1"):
            r = c.get("/api/status", headers={"Host": host})
            assert r.status_code == 421, host
            r = c.post("/api/sales", headers={"Host": host, **till.headers()},
                       json={"key": uuid.uuid4().hex, "lines": [{"sku": "SOAP", "qty": "1"}]})
            assert r.status_code == 421
        assert c.get("/api/status").status_code == 200
    assert till.store.status()["sales_recorded"] == 0


def test_a_state_changing_request_without_the_launch_token_is_refused_and_stores_nothing(till):
    with till.client() as c:
        body = {"key": uuid.uuid4().hex, "lines": [{"sku": "SOAP", "qty": "1"}], "payment": "cash"}
        assert c.post("/api/sales", json=body).status_code == 403
        assert c.post("/api/sales", json=body, headers={"X-Till-Token": "guess"}).status_code == 403
        assert c.post("/api/sync").status_code == 403
        assert c.post("/api/sales/1/void", json={"reason": "x"}).status_code == 403
        assert c.post("/api/sales", json=body, headers=till.headers()).status_code == 201
    assert till.store.status()["sales_recorded"] == 1


def test_the_page_carries_this_launchs_token_and_no_answer_has_cors_headers(till, tmp_path):
    with till.client() as c:
        page = c.get("/", headers={"Origin": "http://evil.example"})
        assert re.search(r'name="till-token" content="([^"]+)"', page.text).group(1) == till.token
        for r in (page, c.get("/api/status", headers={"Origin": "http://evil.example"}),
                  c.options("/api/sales", headers={"Origin": "http://evil.example",
                                                   "Access-Control-Request-Method": "POST"})):
            assert not [h for h in r.headers if h.lower().startswith("access-control-")]
        assert page.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    other, stop = start_till(tmp_path / "other")
    try:
        assert other.token != till.token  # a token is made per launch
    finally:
        stop()


def test_the_branch_secret_never_reaches_the_page(till):
    secret = "s3cr3t-" + "q" * 36
    till.store.save_identity(Identity("dhaka-1", "http://127.0.0.1:9", secret))
    _sale(till)
    with till.client() as c:
        answers = [c.get(p).text for p in ("/", "/api/status", "/api/sales", "/api/sales/1", "/api/products?q=rice",
                                           "/static/till.js", "/receipt")]
    assert all(secret not in a for a in answers)
    assert all("127.0.0.1:9" not in a for a in answers[1:])


def test_the_server_listens_on_loopback_only(till):
    sock = server.bind(0)
    try:
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()


def test_connections_the_till_accepts_have_nagle_off_so_an_answer_never_waits_for_a_delayed_ack():
    # As uvicorn serves the socket: loop.create_server(sock=...); asyncio sets TCP_NODELAY per
    # accepted socket only when the listener's proto is TCP.
    sock = server.bind(0)

    async def accepted_nodelay() -> int:
        loop = asyncio.get_running_loop()
        seen = loop.create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport):
                seen.set_result(transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        listening = await loop.create_server(Probe, sock=sock)
        _reader, writer = await asyncio.open_connection(*sock.getsockname())
        try:
            return await asyncio.wait_for(seen, 10)
        finally:
            writer.close()
            listening.close()

    # In a thread of its own: the browser tests' Playwright keeps an event loop running in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert pool.submit(asyncio.run, accepted_nodelay()).result(timeout=30) != 0


def test_a_resubmitted_sale_with_the_same_key_records_one_sale(till):
    key = uuid.uuid4().hex
    results = []
    threads = [threading.Thread(target=lambda: results.append(_sale(till, key))) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(r.status_code for r in results) == [201] * 4
    assert {r.json()["sale"]["seq"] for r in results} == {1}
    assert till.store.status()["sales_recorded"] == 1
    assert _sale(till).json()["sale"]["seq"] == 2  # a new key is a new sale


def test_a_sale_is_priced_by_the_store_and_bad_carts_get_a_clear_400(till):
    r = _sale(till, lines=[{"sku": "RICE-5KG", "qty": "2"}, {"sku": "ATTA", "qty": "1.250"}], payment="card")
    assert r.status_code == 201
    sale = r.json()["sale"]
    assert sale["total"] == 2 * 42000 + 8125 and sale["payment"] == "card"
    assert [line["qty"] for line in sale["lines"]] == ["2", "1.25"]
    for lines, says in (([], "empty"), ([{"sku": "NOPE", "qty": "1"}], "no product"),
                        ([{"sku": "SOAP", "qty": 1.5}], "quantity"), ([{"sku": "SOAP", "qty": "1.2345"}], "decimals")):
        bad = _sale(till, lines=lines)
        assert bad.status_code == 400 and says in bad.json()["error"]
    with till.client() as c:
        bad = c.post("/api/sales", headers=till.headers(), json={"lines": [{"sku": "SOAP", "qty": "1"}]})
        assert bad.status_code == 400 and "id" in bad.json()["error"]
    assert till.store.status()["sales_recorded"] == 1


def test_a_void_needs_a_reason_and_keeps_it(till):
    _sale(till)
    with till.client() as c:
        assert c.post("/api/sales/1/void", headers=till.headers(), json={"reason": "  "}).status_code == 400
        r = c.post("/api/sales/1/void", headers=till.headers(), json={"reason": "customer changed mind"})
        assert r.status_code == 201 and r.json()["sale"]["voids"] == "1"
        again = c.post("/api/sales/1/void", headers=till.headers(), json={"reason": "twice"})
        assert again.status_code == 400 and "already voided" in again.json()["error"]
        listed = c.get("/api/sales").json()["sales"]
    assert [(s["number"], s["kind"], s["reason"]) for s in listed] == [("2", "void", "customer changed mind"),
                                                                       ("1", "sale", None)]
    assert listed[1]["voided_by"] == "2"


def test_after_a_restore_the_till_shows_and_voids_sales_by_their_printed_numbers(till):
    from branch_client import backup

    _sale(till)
    saved = backup.backup(till.home)
    backup.restore(till.home, saved)
    key = uuid.uuid4().hex
    first, again = _sale(till, key), _sale(till, key)
    assert first.json()["sale"]["number"] == again.json()["sale"]["number"] == "2-1"
    with till.client() as c:
        assert c.get("/api/sales/2-1").json()["sale"]["number"] == "2-1"
        assert c.get("/api/sales/1").json()["sale"]["number"] == "1"
        r = c.post("/api/sales/1/void", headers=till.headers(), json={"reason": "wrong item"})
        assert r.status_code == 201 and (r.json()["sale"]["number"], r.json()["sale"]["voids"]) == ("2-2", "1")
        r = c.post("/api/sales/2-1/void", headers=till.headers(), json={"reason": "customer left"})
        assert (r.json()["sale"]["number"], r.json()["sale"]["voids"]) == ("2-3", "2-1")
        listed = {s["number"]: s for s in c.get("/api/sales").json()["sales"]}
    assert (listed["1"]["voided_by"], listed["2-1"]["voided_by"]) == ("2-2", "2-3")
    assert (listed["2-2"]["reason"], listed["2-3"]["reason"]) == ("wrong item", "customer left")


def test_search_and_barcode_lookup_answer_from_the_catalog(till):
    with till.client() as c:
        assert [p["sku"] for p in c.get("/api/products", params={"q": "চাল"}).json()["products"]] == ["RICE-5KG"]
        assert c.get("/api/products/code/8901234567890").json()["product"]["sku"] == "RICE-5KG"
        missing = c.get("/api/products/code/123")
        assert missing.status_code == 404 and "unknown code" in missing.json()["error"]
        atta = c.get("/api/products/code/2000000000015").json()["product"]
        assert atta["weighed"] is True and atta["unit"] == "kg"


def test_the_status_the_page_asks_for_every_3_s_reads_only_the_unacknowledged_sales(till):
    """Its cost stays put as acknowledged sales pile up (a till's years of sales), unlike `branchsync status`."""
    def sell(count: int) -> None:  # all but the last acknowledged
        sell_and_acknowledge(till.store, count, till.store.status(lifetime=False)["last_seq"] + count - 1,
                             datetime.now(timezone.utc))

    with till.client() as c:
        def ask():
            assert c.get("/api/status").json()["pending"] == 1

        sell(5)
        few = sqlite_steps(till.store, ask)
        sell(100)
        assert sqlite_steps(till.store, ask) == few
        assert sqlite_steps(till.store, till.store.status) > few + 100  # what the page is spared


def test_sync_now_runs_in_the_background_and_reports_in_the_status(stocked_home):
    release = threading.Event()

    def slow_sync():
        release.wait(10)
        return "sync done: pushed 0 sales"

    till, stop = start_till(stocked_home, run_sync=slow_sync)
    try:
        with till.client() as c:
            assert c.post("/api/sync", headers=till.headers()).json()["started"] is True
            assert c.post("/api/sync", headers=till.headers()).json()["started"] is False  # one at a time
            assert c.get("/api/status").json()["syncing"] is True
            assert _sale(till).status_code == 201  # sale entry does not wait for the sync
            release.set()
            till.sync.wait(10)
            status = c.get("/api/status").json()
        assert status["syncing"] is False and status["sync_message"] == "sync done: pushed 0 sales"
        assert status["pending"] == 1
    finally:
        release.set()
        stop()


def test_the_status_gives_the_sync_and_its_last_error_as_codes_with_their_numbers_beside_the_english(stocked_home):
    from branch_client.till.autopush import Note

    till, stop = start_till(stocked_home, run_sync=lambda: Note("pushed", "sync done: pushed 3 sales", count=3))
    try:
        till.store.record_error("cloud refused (branch_revoked): this branch was revoked", code="branch_revoked")
        with till.client() as c:
            c.post("/api/sync", headers=till.headers())
            till.sync.wait(10)
            status = c.get("/api/status").json()
        assert status["sync_note"] == {"code": "pushed", "count": 3}
        assert status["sync_message"] == "sync done: pushed 3 sales"
        assert (status["last_error_code"], status["last_error"]) == (
            "branch_revoked", "cloud refused (branch_revoked): this branch was revoked")
    finally:
        stop()


def test_sync_now_while_a_scheduled_sync_holds_the_lock_says_so_and_does_not_sync(stocked_home):
    from filelock import FileLock

    from branch_client import paths

    till, stop = start_till(stocked_home)
    till.sync._run_sync = server.engine_sync(till.store)
    till.store.save_identity(Identity("dhaka-1", "http://127.0.0.1:9", "k" * 43))
    lock = FileLock(paths.lock_path(till.home), timeout=0)
    lock.acquire()
    try:
        with till.client() as c:
            c.post("/api/sync", headers=till.headers())
            till.sync.wait(10)
            status = c.get("/api/status").json()
            assert "already running" in status["sync_message"]
            assert (status["sync_note"]["code"], status["sync_note"]["error"]) == ("busy", "sync_running")
            assert status["sync_note"]["retry_in"] > 0
    finally:
        lock.release()
        stop()


def test_the_till_command_serves_with_no_standard_streams_as_in_the_windowed_executable(tmp_path):
    import subprocess
    import sys
    import time

    from headoffice.stand_ins import free_port

    port = free_port()
    # A windowed PyInstaller program has sys.stdout and sys.stderr set to None.
    code = ("import sys; sys.stdout = sys.stderr = None; from branch_client import cli; "
            f"sys.argv = ['branchsync', '--home', {str(tmp_path / 'home')!r}, 'till', '--port', '{port}', '--no-browser']; "
            "cli.main()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert r.status_code == 200 and r.json()["pending"] == 0
        assert "till serving at" in (tmp_path / "home" / "logs" / "branchsync.log").read_text(encoding="utf-8")
    finally:
        proc.terminate()
        proc.wait(10)


def test_search_text_that_looks_like_fts_syntax_is_searched_as_text(till):
    with till.client() as c:
        for q in ('"', '"*^()', "AND OR NOT", "a:b", "NEAR(x y)", "'; DROP TABLE products; --", " ", "x" * 500):
            r = c.get("/api/products", params={"q": q})
            assert r.status_code == 200 and r.json()["products"] == [], q
        assert c.get("/api/products", params={"q": "soap", "limit": "many"}).status_code == 400
    assert till.store.status()["products"] == 6


# --- scale labels, quantities, held carts, cashiers ---------------------------------------------------


def test_a_scale_label_is_looked_up_by_its_item_code_and_sold_by_its_weight(till):
    with till.client() as c:
        got = c.get(f"/api/products/code/{FISH_LABEL}").json()
        assert (got["product"]["sku"], got["code"], got["qty"], got["price"]) == ("FISH-RUI", FISH_LABEL, "1.25", None)
        misread = c.get("/api/products/code/2012345012508")
        assert misread.status_code == 400 and "wrong check digit" in misread.json()["error"]
    r = _sale(till, lines=[{"code": FISH_LABEL}, {"sku": "RICE-5KG", "qty": "1"}])
    assert r.status_code == 201 and r.json()["sale"]["total"] == 68750 + 42000
    # The weight is read from the code again: a page cannot send its own quantity with a label.
    assert _sale(till, lines=[{"code": FISH_LABEL, "qty": "9"}]).status_code == 400


def test_a_quantity_typed_at_the_till_is_checked_by_the_sales_own_rule(till):
    with till.client() as c:
        assert c.get("/api/quantity", params={"sku": "ATTA", "q": "1.255"}).json() == {"qty": "1.255"}
        comma = c.get("/api/quantity", params={"sku": "ATTA", "q": "1,5"})
        assert comma.status_code == 400 and "write 1.5 with a dot" in comma.json()["error"]
        piece = c.get("/api/quantity", params={"sku": "SOAP", "q": "1.5"})
        assert piece.status_code == 400 and "whole number" in piece.json()["error"]


def test_a_very_large_quantity_is_recorded_only_once_confirmed(till):
    lines = [{"sku": "SOAP", "qty": "500"}]
    key = uuid.uuid4().hex
    asked = _sale(till, key=key, lines=lines)
    assert asked.status_code == 409 and asked.json()["confirm"] is True and "is a lot" in asked.json()["error"]
    assert till.store.status()["sales_recorded"] == 0
    with till.client() as c:
        r = c.post("/api/sales", headers=till.headers(), json={"key": key, "lines": lines, "confirmed": True})
    assert r.status_code == 201 and r.json()["sale"]["total"] == 500 * 4500


def test_a_held_cart_is_kept_in_the_database_and_resumed_at_todays_prices_once(till):
    with till.client() as c:
        held = c.post("/api/held", headers=till.headers(),
                      json={"lines": [{"sku": "SOAP", "qty": "2"}, {"code": FISH_LABEL}]})
        assert held.status_code == 201 and held.json()["held"]["total"] == 9000 + 68750
        [listed] = c.get("/api/held").json()["held"]
        assert (listed["line_count"], listed["first_name"]) == (2, "Lux Soap Bar")
        back = c.post(f"/api/held/{listed['id']}/resume", headers=till.headers()).json()["lines"]
        assert [(v["product"]["sku"], v["qty"], v["code"]) for v in back] == [("SOAP", "2", None),
                                                                              ("FISH-RUI", "1.25", FISH_LABEL)]
        assert c.get("/api/held").json()["held"] == []
        assert c.post(f"/api/held/{listed['id']}/resume", headers=till.headers()).status_code == 400
        assert c.post("/api/held", json={"lines": [{"sku": "SOAP", "qty": "1"}]}).status_code == 403  # no token


def test_once_cashiers_exist_nothing_is_recorded_until_one_signs_in_and_the_sale_records_who(till):
    till.store.add_cashier("Rahim", "4821")
    refused = _sale(till)
    assert refused.status_code == 401 and refused.json()["sign_in"] is True
    with till.client() as c:
        assert c.get("/api/session").json() == {"cashier": None, "required": True}
        wrong = c.post("/api/session", headers=till.headers(), json={"name": "Rahim", "pin": "0000"})
        assert wrong.status_code == 401 and "0000" not in wrong.text
        assert c.post("/api/session", headers=till.headers(), json={"name": "rahim", "pin": "4821"}).json() == {
            "cashier": "Rahim"}
        number = _sale(till).json()["sale"]["number"]
        assert c.get(f"/api/sales/{number}").json()["sale"]["cashier"] == "Rahim"
        c.post("/api/session/out", headers=till.headers())
        assert c.get("/api/session").json()["cashier"] is None
    assert _sale(till).status_code == 401


def test_five_wrong_pins_lock_the_name_for_five_minutes_and_the_answer_says_until_when(stocked_home):
    from datetime import datetime, timedelta, timezone

    now = [datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)]
    till, stop = start_till(stocked_home, clock=lambda: now[0])
    try:
        till.store.add_cashier("Rahim", "4821")
        answers = [_post(till, "/api/session", {"name": "Rahim", "pin": "0000"}) for _ in range(5)]
        assert [a.status_code for a in answers] == [401, 401, 401, 401, 423]
        assert [a.json().get("left") for a in answers[:4]] == [4, 3, 2, 1]
        assert "wrong name or PIN" in answers[0].json()["error"]
        unknown = _post(till, "/api/session", {"name": "Nobody", "pin": "0000"})
        assert unknown.json() == answers[0].json() | {"left": 4} and unknown.status_code == 401  # the same words
        now[0] += timedelta(minutes=4)
        locked = _post(till, "/api/session", {"name": "rahim", "pin": "4821"})  # even the right PIN
        assert locked.status_code == 423
        assert (locked.json()["locked"], locked.json()["name"], locked.json()["locked_until"]) == (
            True, "Rahim", "2026-12-01T08:05:00+00:00")
        assert "branchsync cashier unlock Rahim" in locked.json()["error"]
        now[0] += timedelta(minutes=1)
        assert _post(till, "/api/session", {"name": "Rahim", "pin": "4821"}).json() == {"cashier": "Rahim"}
    finally:
        stop()


def test_the_receipt_gets_the_shop_name_bin_and_time_zone_from_the_settings(till):
    till.store.set_setting("shop.name", "স্বপ্ন Gulshan")
    till.store.set_setting("shop.bin", "000123456-0101")
    number = _sale(till).json()["sale"]["number"]
    with till.client() as c:
        shop = c.get(f"/api/sales/{number}").json()["shop"]
    assert shop == {"name": "স্বপ্ন Gulshan", "bin": "000123456-0101", "branch": None, "time_zone": "Asia/Dhaka"}


def test_a_sale_answers_while_the_push_it_started_is_still_running_and_sales_meanwhile_give_one_more_push(stocked_home):
    started, release, calls = threading.Event(), threading.Event(), []

    def blocked_sync():
        calls.append(1)
        started.set()
        release.wait(30)
        return "sync done: pushed 1 sales"

    till, stop = start_till(stocked_home, run_sync=blocked_sync)
    try:
        assert _sale(till).status_code == 201
        assert started.wait(10)  # the sale started a push, and its answer came back without it
        assert [_sale(till).status_code for _ in range(3)] == [201] * 3  # answered while the push is blocked
        assert not release.is_set() and till.sync.running and len(calls) == 1
        with till.client() as c:
            assert c.get("/api/status").json()["sync_message"] == "sending sales to head office"
        release.set()
        till.sync.wait(10)
        assert len(calls) == 2  # the three sales during the first push: one more, not three
        assert till.store.status()["sales_recorded"] == 4
    finally:
        release.set()
        stop()


def test_sales_while_head_office_is_unreachable_try_once_then_wait_and_the_page_says_so(stocked_home):
    from branch_client.errors import CloudUnreachable

    calls = []

    def offline_sync():
        calls.append(1)
        raise CloudUnreachable("cannot reach the cloud at example (ConnectError)")

    till, stop = start_till(stocked_home, run_sync=offline_sync)
    try:
        assert _sale(till).status_code == 201
        till.sync.wait(10)
        assert [_sale(till).status_code for _ in range(5)] == [201] * 5
        till.sync.wait(10)
        assert len(calls) == 1  # backing off: no push per sale
        with till.client() as c:
            status = c.get("/api/status").json()
        message = status["sync_message"]
        assert status["sync_note"]["code"] == "unreachable" and status["sync_note"]["retry_in"] > 0
        assert message.startswith("head office cannot be reached: sales are kept safely on this till")
        assert "next try in" in message
    finally:
        stop()


def test_a_till_opened_without_auto_push_sends_only_on_sync_now(stocked_home):
    calls = []
    till, stop = start_till(stocked_home, run_sync=lambda: calls.append(1) or "sync done")
    till.sync.auto_push = False
    try:
        assert _sale(till).status_code == 201
        till.sync.wait(10)
        assert calls == []
        with till.client() as c:
            assert c.post("/api/sync", headers=till.headers()).json()["started"] is True
        till.sync.wait(10)
        assert calls == [1]
    finally:
        stop()


# --- the complete record: discounts, split payments, quotes, refunds, shifts ----------------------------------


def _post(till, path, body):
    with till.client() as c:
        return c.post(path, headers=till.headers(), json=body)


def test_a_split_sale_with_discounts_and_an_override_records_the_complete_record_and_shows_change_and_vat(till):
    from decimal import Decimal

    from tests.branch_client.fakes import entry, page, product
    till.store.apply_catalog_page(page(entry(100, product("OIL-1L", 21000, "সয়াবিন তেল", vat_rate=Decimal(5)))), 0)
    r = _post(till, "/api/sales", {
        "key": uuid.uuid4().hex,
        "lines": [{"sku": "OIL-1L", "qty": "2", "discount": {"kind": "percent", "value": "10", "reason": "dented"}},
                  {"sku": "SOAP", "qty": "1", "price": 4000, "price_reason": "last piece"}],
        "discount": {"kind": "amount", "value": "1000", "reason": "loyal customer"},
        "payments": [{"method": "mobile", "amount": 20000, "wallet": "bkash", "txn_id": "9C7D2XK41Q"},
                     {"method": "cash", "amount": 20800, "tendered": 50000}]})
    assert r.status_code == 201, r.text
    sale = r.json()["sale"]
    oil, soap = sale["lines"]
    assert (oil["line_total"], oil["discount"]["amount"], oil["vat_rate"]) == (42000, 4200, "5")
    # The 1000 paisa sale discount over 37800 and 4000: 904 and 95, the paisa left over to the first line.
    assert (oil["net"], soap["net"], sale["total"]) == (37800 - 905, 4000 - 95, 40800)
    assert oil["vat"] == 1757 and sale["vat"] == 1757 and soap["vat"] == 0
    assert sale["change"] == 29200 and sale["payment"] == "mobile+cash"
    assert sale["payments"][0] == {"method": "mobile", "amount": 20000, "tendered": None, "change": None,
                                   "wallet": "bkash", "txn_id": "9C7D2XK41Q"}
    stored = till.store.get_sale(sale["number"])
    assert stored.sale.is_v3 and stored.sale.cashier == "manager" and stored.price_reasons == (None, "last piece")
    assert [line.price_reason for line in stored.sale.lines] == [None, "last piece"]  # on the wire too
    with till.client() as c:
        shown = c.get(f"/api/sales/{sale['number']}").json()["sale"]
    assert shown["lines"][1]["price_reason"] == "last piece" and shown["discount"]["reason"] == "loyal customer"


def test_the_older_body_with_one_payment_method_records_one_payment_of_the_total(till):
    r = _sale(till, payment="card")
    assert r.status_code == 201
    assert r.json()["sale"]["payments"] == [{"method": "card", "amount": 42000, "tendered": None, "change": None,
                                             "wallet": None, "txn_id": None}]
    r = _sale(till, payment="mobile")
    assert r.status_code == 400 and "wallet" in r.json()["error"]


def test_payments_that_do_not_make_the_total_or_a_discount_without_a_reason_get_a_400_and_store_nothing(till):
    bad = [
        ({"payments": [{"method": "card", "amount": 40000}]}, "add up exactly"),
        ({"payments": [{"method": "cash", "amount": 42000, "tendered": 40000}]}, "less than"),
        ({"payments": [{"method": "mobile", "amount": 42000, "wallet": "bkash"}]}, "transaction id"),
        ({"payments": "cash"}, "a list"),
        ({"discount": {"kind": "percent", "value": "10", "reason": " "}}, "needs a reason"),
        ({"discount": {"kind": "amount", "value": "50000", "reason": "x"}}, "more than"),
        ({"lines": [{"sku": "RICE-5KG", "qty": "1", "price": 0}]}, "needs a reason"),
    ]
    for extra, says in bad:
        body = {"key": uuid.uuid4().hex, "lines": [{"sku": "RICE-5KG", "qty": "1"}], **extra}
        r = _post(till, "/api/sales", body)
        assert r.status_code == 400 and says in r.json()["error"], (extra, r.text)
    assert till.store.status()["sales_recorded"] == 0


def test_a_quote_prices_the_cart_by_the_sales_own_rules_and_records_nothing(till):
    cart = {"lines": [{"sku": "RICE-5KG", "qty": "1"}, {"sku": "SOAP", "qty": "2"}],
            "discount": {"kind": "percent", "value": "10", "reason": "eid offer"}}
    r = _post(till, "/api/quote", cart)
    assert r.status_code == 200, r.text
    quote = r.json()["quote"]
    assert quote["discount"]["amount"] == 5100 and quote["total"] == 51000 - 5100
    assert [line["net"] for line in quote["lines"]] == [42000 - 4200, 9000 - 900]
    sold = _post(till, "/api/sales", {"key": uuid.uuid4().hex, **cart}).json()["sale"]
    assert sold["total"] == quote["total"] and [x["net"] for x in sold["lines"]] == [x["net"] for x in quote["lines"]]
    with till.client() as c:
        assert c.post("/api/quote", json=cart).status_code == 403  # the token, as for every POST
    assert till.store.status()["sales_recorded"] == 1


def test_a_refund_returns_part_of_a_sale_once_per_key_and_the_sale_then_shows_what_is_still_refundable(till):
    number = _sale(till, lines=[{"sku": "SOAP", "qty": "3"}, {"sku": "RICE-5KG", "qty": "1"}]).json()["sale"]["number"]
    body = {"key": uuid.uuid4().hex, "returns": [{"line": 1, "qty": "2"}],
            "payments": [{"method": "cash", "amount": 9000}], "reason": "wrong scent"}
    first, again = _post(till, f"/api/sales/{number}/refund", body), _post(till, f"/api/sales/{number}/refund", body)
    assert first.status_code == 201, first.text
    refund = first.json()["sale"]
    assert again.json()["sale"]["number"] == refund["number"] == "2"
    assert (refund["kind"], refund["refunds"], refund["total"]) == ("refund", number, -9000)
    assert refund["returns"] == [{"line": 1, "sku": "SOAP", "qty": "2", "amount": 9000}]
    with till.client() as c:
        shown = c.get(f"/api/sales/{number}").json()["sale"]
    assert [(x["returned"], x["refundable"]) for x in shown["lines"]] == [("2", "1"), ("0", "1")]
    assert shown["refunded_by"] == ["2"]
    too_much = _post(till, f"/api/sales/{number}/refund", {**body, "key": uuid.uuid4().hex})
    assert too_much.status_code == 400 and "not yet returned" in too_much.json()["error"]
    void = _post(till, f"/api/sales/{number}/void", {"reason": "changed mind"})
    assert void.status_code == 400 and "refund what is left" in void.json()["error"]
    assert till.store.status()["sales_recorded"] == 2


def test_a_shift_opens_with_a_float_and_closes_with_its_z_report_which_can_be_printed_again(till):
    with till.client() as c:
        assert c.get("/api/shift").json() == {"shift": None}
    opened = _post(till, "/api/shift/open", {"float": 200000})
    assert opened.status_code == 201 and opened.json()["shift"]["opening_float"] == 200000
    assert _post(till, "/api/shift/open", {"float": 0}).status_code == 400
    _post(till, "/api/sales", {"key": uuid.uuid4().hex, "lines": [{"sku": "RICE-5KG", "qty": "1"}],
                               "payments": [{"method": "cash", "amount": 42000, "tendered": 50000}]})
    _sale(till, payment="card")
    with till.client() as c:
        assert c.get("/api/shift").json()["shift"]["id"] == opened.json()["shift"]["id"]
    assert _post(till, "/api/shift/close", {"counted": "lots"}).status_code == 400
    closed = _post(till, "/api/shift/close", {"counted": 241000})
    assert closed.status_code == 200, closed.text
    report = closed.json()["report"]
    assert (report["sales"], report["net"], report["by_method"]) == (2, 84000, {"cash": 42000, "card": 42000,
                                                                                  "mobile": 0})
    assert (report["expected_cash"], report["counted_cash"], report["difference"]) == (242000, 241000, -1000)
    assert till.store.get_sale(report["number"]).sale.kind == "shift_close"
    with till.client() as c:
        assert c.get(f"/api/shift/{report['shift_id']}/z").json()["report"] == report
        assert c.get("/api/shift/nosuch/z").status_code == 404
        assert c.get("/api/shift").json() == {"shift": None}
        for path, body in (("/api/shift/open", {"float": 0}), ("/api/shift/close", {"counted": 0}),
                           ("/api/sales/1/refund", {"key": uuid.uuid4().hex, "returns": [{"line": 1, "qty": "1"}]})):
            assert c.post(path, json=body).status_code == 403  # no token: refused, nothing stored
    assert till.store.current_shift() is None and till.store.status()["sales_recorded"] == 3


def test_a_held_line_comes_back_with_its_price_override_and_discount(till):
    line = {"sku": "SOAP", "qty": "2", "price": 4000, "price_reason": "last pieces",
            "discount": {"kind": "percent", "value": "5", "reason": "regular"}}
    held = _post(till, "/api/held", {"lines": [line]})
    assert held.status_code == 201 and held.json()["held"]["total"] == 7600  # 2 x ৳40, 5% off
    back = _post(till, f"/api/held/{held.json()['held']['id']}/resume", {}).json()
    assert back["lines"][0]["held"] == line and back["discount"] is None


def test_a_held_cart_keeps_its_sale_discount_and_its_total_in_the_list_counts_it(till):
    discount = {"kind": "amount", "value": "1000", "reason": "regular customer"}
    held = _post(till, "/api/held", {"lines": [{"sku": "SOAP", "qty": "2"}], "discount": discount})
    assert held.status_code == 201, held.text
    with till.client() as c:
        [listed] = c.get("/api/held").json()["held"]
    assert listed["total"] == 9000 - 1000
    back = _post(till, f"/api/held/{listed['id']}/resume", {}).json()
    assert back["discount"] == discount and [v["qty"] for v in back["lines"]] == ["2"]
    refused = _post(till, "/api/held", {"lines": [{"sku": "SOAP", "qty": "1"}],
                                        "discount": {"kind": "amount", "value": "500", "reason": ""}})
    assert refused.status_code == 400 and till.store.held_carts() == []


def test_a_refund_quote_says_what_each_returned_line_pays_back_by_the_refunds_own_rule_and_records_nothing(till):
    number = _sale(till, lines=[{"sku": "SOAP", "qty": "3"}, {"sku": "ATTA", "qty": "3", "price": 100,
                                                              "price_reason": "end of sack"}]).json()["sale"]["number"]
    quote = _post(till, f"/api/sales/{number}/refund/quote", {"returns": [{"line": 1, "qty": "2"},
                                                                          {"line": 2, "qty": "1.5"}]})
    assert quote.status_code == 200, quote.text
    assert quote.json()["quote"] == {"total": 9000 + 150, "lines": [
        {"line": 1, "sku": "SOAP", "qty": "2", "amount": 9000}, {"line": 2, "sku": "ATTA", "qty": "1.5", "amount": 150}]}
    tiny = _post(till, f"/api/sales/{number}/refund/quote", {"returns": [{"line": 2, "qty": "0.001"}]})
    assert tiny.status_code == 400 and "too little to pay back" in tiny.json()["error"]
    too_many = _post(till, f"/api/sales/{number}/refund/quote", {"returns": [{"line": 1, "qty": "4"}]})
    assert too_many.status_code == 400 and "not yet returned" in too_many.json()["error"]
    with till.client() as c:
        assert c.post(f"/api/sales/{number}/refund/quote", json={"returns": [{"line": 1, "qty": "1"}]}).status_code == 403
    assert till.store.status()["sales_recorded"] == 1


def test_the_z_report_answer_carries_the_shop_and_the_branch_for_its_header(till):
    till.store.set_setting("shop.name", "স্বপ্ন Gulshan")
    till.store.set_setting("shop.bin", "000123456-0101")
    _post(till, "/api/shift/open", {"float": 0})
    report = _post(till, "/api/shift/close", {"counted": 0}).json()["report"]
    with till.client() as c:
        z = c.get(f"/api/shift/{report['shift_id']}/z").json()
    assert z["shop"] == {"name": "স্বপ্ন Gulshan", "bin": "000123456-0101", "branch": None, "time_zone": "Asia/Dhaka"}
    assert "branch" in z and z["branch"] is None  # not enrolled in this test
