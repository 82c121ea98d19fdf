"""The sync engine against the real cloud, in memory, behind the branch's seam.

`FakeCloud` (tests/branch_client/fakes.py) is the real Functions app and Service over a
MemoryStore; only the network (`httpx.MockTransport`) and the queue's transport (a queue
sender that runs the queue function at once) are stood in. The store is a real SQLite
file. Real Azurite and the dev host over HTTP are exercised by the end-to-end tests.
"""

import secrets
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from filelock import FileLock

from branch_client.errors import CloudUnreachable, NotEnrolled, SyncAlreadyRunning
from branch_client.sale_entry import parse_items
from branch_client.store import SaleState, Store
from branch_client.sync import (ACK_POLL_BUSY, ACK_POLL_FIRST, ACK_POLL_MAX, TRANSITIONS, SyncEngine, SyncState,
                                next_ack_pause)
from shared import limits
from shared.encoding import pack_sales
from tests.branch_client.fakes import bulky_products, bulky_sale, insert_as_an_older_version, product


def _engine(store, fake_cloud, **options) -> SyncEngine:
    client_options = {k: options.pop(k) for k in ("attempts",) if k in options}
    return SyncEngine(store, fake_cloud.client(**client_options), **options)


def _all_products(store: Store):
    from sqlalchemy import select

    from branch_client.schema import products
    with store.engine.connect() as conn:
        return [Store._product(r) for r in conn.execute(select(products).order_by(products.c.sku))]


def _sell(store, count, item="SOAP=1"):
    return [store.record_sale(parse_items([item])) for _ in range(count)]


def _sell_bulky(store, fake_cloud, count):
    """`count` sales of 60 different bulky products each: one fills 40% of a message, two to a message."""
    bulky = [bulky_products(60, seed=i) for i in range(count)]
    fake_cloud.put(*(p for products in bulky for p in products))
    _engine(store, fake_cloud).run()
    for products in bulky:
        store.record_sale(parse_items([f"{p.sku}=1" for p in products]))


class Clock:
    def __init__(self):
        self.now = datetime.now(timezone.utc)

    def __call__(self):
        return self.now


# --- pull ------------------------------------------------------------------------------------------


def test_a_pull_asks_page_after_page_until_the_cloud_has_no_more(enrolled, fake_cloud):
    fake_cloud.put(*[product(f"SKU-{i:02d}", 100 + i) for i in range(25)])
    report = _engine(enrolled, fake_cloud, page_limit=10).run()
    assert [q["cursor"] for q in fake_cloud.pulls] == ["0", "10", "20"]
    assert (report.pages, report.entries, report.catalog_version) == (3, 25, 25)
    assert {sku: p for sku, p in ((p.sku, p) for p in _all_products(enrolled))} == fake_cloud.products()


def test_a_first_pull_of_2500_products_takes_a_page_of_1000_then_one_wide_page_of_the_rest(enrolled, fake_cloud):
    fake_cloud.put(*[product(f"SKU-{i:04d}", 100 + i) for i in range(2500)])
    report = _engine(enrolled, fake_cloud).run()
    # The first page small, so the till starts writing early; then `limit` for clouds of the
    # previous release and `max_entries` for this one.
    assert [(q["cursor"], q["limit"], q.get("max_entries")) for q in fake_cloud.pulls] == [
        ("0", "1000", None), ("1000", "1000", "10000")]
    assert (report.pages, report.entries, report.catalog_version) == (2, 2500, 2500)
    assert len(_all_products(enrolled)) == 2500 and [p.sku for p in enrolled.search_products("SKU-2499")] == ["SKU-2499"]


def test_a_price_day_of_1100_changes_is_one_wide_page(enrolled, fake_cloud):
    fake_cloud.put(*[product(f"SKU-{i:04d}", 100 + i) for i in range(1500)])
    _engine(enrolled, fake_cloud).run()
    fake_cloud.put(*[product(f"SKU-{i:04d}", 200 + i) for i in range(1000)])
    for i in range(1000, 1100):
        fake_cloud.delete(f"SKU-{i:04d}")
    fake_cloud.pulls.clear()
    report = _engine(enrolled, fake_cloud).run()
    assert (report.pages, report.entries, len(fake_cloud.pulls)) == (1, 1100, 1)
    assert {p.sku: p for p in _all_products(enrolled)} == fake_cloud.products()


def test_a_cloud_older_than_wide_pages_is_pulled_in_its_pages_of_1000(enrolled, fake_cloud, monkeypatch):
    from branchsync_cloud import http
    # The previous release's cloud reads `limit` alone (an unknown parameter is ignored).
    monkeypatch.setattr(http, "page_limit", lambda query: http.int_param(query, "limit", 1000, 1, 1000))
    fake_cloud.put(*[product(f"SKU-{i:04d}", 100 + i) for i in range(2500)])
    report = _engine(enrolled, fake_cloud).run()
    assert [q["cursor"] for q in fake_cloud.pulls] == ["0", "1000", "2000"]  # as the previous release pulled
    assert (report.pages, report.entries, report.catalog_version) == (3, 2500, 2500)
    assert {p.sku: p for p in _all_products(enrolled)} == fake_cloud.products()


def _asked_for(fake_cloud, monkeypatch, cursor: str) -> threading.Event:
    """Set once the cloud is asked for the page from `cursor`."""
    asked = threading.Event()
    answer = fake_cloud.handler

    def handler(request):
        if request.url.params.get("cursor") == cursor:
            asked.set()
        return answer(request)

    monkeypatch.setattr(fake_cloud, "handler", handler)
    return asked


def test_the_next_catalog_page_is_asked_for_while_the_current_one_is_written(enrolled, fake_cloud, monkeypatch):
    fake_cloud.put(*[product(f"SKU-{i:02d}", 100 + i) for i in range(25)])
    asked = _asked_for(fake_cloud, monkeypatch, "10")
    seen_while_writing = []
    write = enrolled.apply_catalog_page

    def apply_catalog_page(page, *args, **kwargs):
        if page.next_cursor == 10:  # writing the first page: the second is already on its way
            seen_while_writing.append(asked.wait(timeout=30))
        return write(page, *args, **kwargs)

    monkeypatch.setattr(enrolled, "apply_catalog_page", apply_catalog_page)
    report = _engine(enrolled, fake_cloud, page_limit=10).run()
    assert seen_while_writing == [True]
    assert [q["cursor"] for q in fake_cloud.pulls] == ["0", "10", "20"] and report.entries == 25


def test_the_page_after_next_is_asked_for_while_the_next_one_is_still_validated(enrolled, fake_cloud, monkeypatch):
    from branch_client.cloud_client import PullReply

    fake_cloud.put(*[product(f"SKU-{i:02d}", 100 + i) for i in range(35)])
    asked_for_20 = _asked_for(fake_cloud, monkeypatch, "20")
    seen_while_validating = []
    validate = PullReply.answer

    def validated(reply):
        page = validate(reply)
        if page.catalog.next_cursor == 20:  # validating the page from 10: the one from 20 is on its way
            seen_while_validating.append(asked_for_20.wait(timeout=30))
        return page

    monkeypatch.setattr(PullReply, "answer", validated)
    report = _engine(enrolled, fake_cloud, page_limit=10).run()
    assert seen_while_validating == [True]
    assert [q["cursor"] for q in fake_cloud.pulls] == ["0", "10", "20", "30"] and report.entries == 35
    assert {p.sku: p for p in _all_products(enrolled)} == fake_cloud.products()


def test_a_page_asked_for_ahead_from_a_cursor_the_validated_page_does_not_name_is_asked_for_again(
        enrolled, fake_cloud, monkeypatch):
    from branch_client.cloud_client import PullReply

    fake_cloud.put(*[product(f"SKU-{i:02d}", 100 + i) for i in range(25)])
    monkeypatch.setattr(PullReply, "next_cursor", lambda reply: 7)  # bytes that name another cursor than the page
    report = _engine(enrolled, fake_cloud, page_limit=10).run()
    assert [q["cursor"] for q in fake_cloud.pulls if q["cursor"] != "7"] == ["0", "10", "20"] and report.entries == 25
    assert {p.sku: p for p in _all_products(enrolled)} == fake_cloud.products()


def test_an_interrupted_pull_resumes_from_its_stored_cursor_and_ends_with_the_same_catalog(enrolled, fake_cloud, tmp_path):
    fake_cloud.put(*[product(f"SKU-{i:02d}", 100 + i) for i in range(25)])
    fake_cloud.delete("SKU-03")
    fake_cloud.pull_failures_after = 2  # the network goes after two pages
    with pytest.raises(CloudUnreachable):
        _engine(enrolled, fake_cloud, page_limit=10).run()
    # two pages of ten stored: versions 1-20 (the cloud keeps SKU-03's version 4 beside its tombstone,
    # 26, until a compaction drops it)
    assert enrolled.catalog_cursor() == 20 and len(_all_products(enrolled)) == 20

    fake_cloud.pull_failures_after = None
    fake_cloud.pulls.clear()
    _engine(enrolled, fake_cloud, page_limit=10).run()
    assert [q["cursor"] for q in fake_cloud.pulls] == ["20"]
    assert {p.sku: p for p in _all_products(enrolled)} == fake_cloud.products()
    assert enrolled.catalog_cursor() == fake_cloud.version == 26


def test_a_branch_behind_the_tombstone_horizon_resyncs_in_full(enrolled, fake_cloud):
    fake_cloud.put(product("A"), product("B"), product("C"))
    _engine(enrolled, fake_cloud).run()
    fake_cloud.delete("B")
    fake_cloud.put(product("D"))
    fake_cloud.put(product("A", 999))
    fake_cloud.put(product("C", 777))  # every live product is now newer than B's tombstone, so it may be purged
    fake_cloud.purge_tombstones()  # the branch never hears of B's deletion
    report = _engine(enrolled, fake_cloud).run()
    assert report.full_resync
    assert [q["cursor"] for q in fake_cloud.pulls][-2:] == ["3", "0"]
    assert {p.sku: p for p in _all_products(enrolled)} == fake_cloud.products()
    assert enrolled.get_product("B") is None and enrolled.get_product("A").price == 999


def test_pulls_acknowledge_what_the_cloud_has_applied(enrolled, fake_cloud):
    fake_cloud.put(product("SOAP", 4500))
    _engine(enrolled, fake_cloud).run()
    _sell(enrolled, 3)
    first = _engine(enrolled, fake_cloud).run()
    assert first.pushed == 3 and first.pending == 3  # pushed, not yet acknowledged
    second = _engine(enrolled, fake_cloud).run()
    assert second.applied_through == 3 and second.pushed == 0 and second.pending == 0
    assert {r.state for r in enrolled.recent_sales()} == {SaleState.ACKED}
    assert fake_cloud.pulls[-1]["pending"] == "3"  # the pull reports what still waits for its ack


class Waits:
    """The engine's sleep and monotonic clock: a sleep moves the clock, nothing really waits."""

    def __init__(self):
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def _waiting_engine(store, fake_cloud, ack_wait=5.0, **options):
    waits = Waits()
    return _engine(store, fake_cloud, ack_wait=ack_wait, sleep=waits.sleep, monotonic=waits.monotonic, **options), waits


def test_a_sync_asks_once_more_after_its_push_and_ends_acknowledged_when_the_cloud_applies_promptly(enrolled, fake_cloud):
    fake_cloud.put(product("SOAP", 4500))
    _engine(enrolled, fake_cloud).run()
    _sell(enrolled, 3)
    engine, waits = _waiting_engine(enrolled, fake_cloud)
    report = engine.run()
    assert (report.pushed, report.ack_pulls, report.acknowledged, report.on_the_way, report.pending) == (3, 1, 3, 0, 0)
    assert {r.state for r in enrolled.recent_sales()} == {SaleState.ACKED}
    assert fake_cloud.pulls[-1]["pending"] == "3"


def test_the_wait_asks_again_until_a_slower_apply_is_acknowledged(enrolled, fake_cloud):
    fake_cloud.put(product("SOAP", 4500))
    _engine(enrolled, fake_cloud).run()
    _sell(enrolled, 2)
    fake_cloud.slow, fake_cloud.apply_at_pull = True, len(fake_cloud.pulls) + 4  # applied by the third ack pull
    engine, waits = _waiting_engine(enrolled, fake_cloud)
    report = engine.run()
    assert (report.ack_pulls, report.acknowledged, report.pending) == (3, 2, 0)
    assert waits.slept == sorted(waits.slept)  # asking less often as it waits longer


def test_while_the_asks_see_sales_acknowledged_the_next_ask_comes_when_their_pace_says_the_rest_are(enrolled, fake_cloud):
    _sell_bulky(enrolled, fake_cloud, 6)  # three messages
    fake_cloud.slow, fake_cloud.apply_at_pull = True, len(fake_cloud.pulls) + 2  # from the first ack pull on
    fake_cloud.apply_per_pull = 2  # two messages applied by each ask
    engine, waits = _waiting_engine(enrolled, fake_cloud)
    report = engine.run()
    assert (report.pushed, report.messages, report.ack_pulls, report.pending) == (6, 3, 2, 0)
    # Four of six acknowledged 0.1 s into the wait: the last two are due 0.05 s later, so the
    # second ask comes after the shortest wait, 0.1 s, not the 0.2 s of a wait that saw nothing.
    assert waits.slept == [ACK_POLL_FIRST, ACK_POLL_FIRST]


def test_while_each_ask_sees_some_acknowledged_the_asks_never_slow_down_to_a_long_wait():
    # 10,000 on their way, 2,000 acknowledged in a second: the pace says 4 s for the rest,
    # but a backlog's applies speed up once the push ends, so the next ask is due soon.
    assert next_ack_pause(ACK_POLL_FIRST, 10_000, 8_000, 1.0) == ACK_POLL_BUSY
    # The last few are due in 10 ms: still no sooner than the shortest wait.
    assert next_ack_pause(ACK_POLL_FIRST, 10_000, 100, 1.0) == ACK_POLL_FIRST


def test_asks_that_see_nothing_double_the_wait_up_to_the_longest():
    pauses = [ACK_POLL_FIRST]
    for _ in range(6):
        pauses.append(next_ack_pause(pauses[-1], 5, 5, pauses[-1]))
    assert pauses == [0.1, 0.2, 0.4, 0.8, 0.8, 0.8, 0.8] and ACK_POLL_MAX == 0.8


def test_a_cold_cloud_is_asked_only_a_few_times_in_the_default_wait(enrolled, fake_cloud):
    fake_cloud.put(product("SOAP", 4500))
    _engine(enrolled, fake_cloud).run()
    _sell(enrolled, 1)
    fake_cloud.slow = True  # never applies while the till waits
    engine, waits = _waiting_engine(enrolled, fake_cloud, ack_wait=5.0)
    report = engine.run()
    assert report.ack_pulls == len(waits.slept) <= 9 and sum(waits.slept) == pytest.approx(5.0)


def test_a_cloud_slower_than_the_wait_leaves_the_sales_on_their_way_and_the_sync_succeeds(enrolled, fake_cloud):
    fake_cloud.put(product("SOAP", 4500))
    _engine(enrolled, fake_cloud).run()
    _sell(enrolled, 3)
    fake_cloud.slow = True  # never applies while the till waits
    engine, waits = _waiting_engine(enrolled, fake_cloud, ack_wait=3.0)
    report = engine.run()
    assert (report.acknowledged, report.on_the_way, report.pending) == (0, 3, 3)
    assert sum(waits.slept) == pytest.approx(3.0) and report.ack_pulls == len(waits.slept)
    assert engine.state == SyncState.IDLE and enrolled.status()["last_error"] is None
    fake_cloud.slow, fake_cloud.apply_at_pull = False, 0  # the next sync's first pull brings the acks
    assert _engine(enrolled, fake_cloud).run().acknowledged == 3


def test_a_cloud_unreachable_while_the_till_waits_for_acks_does_not_fail_the_sync(enrolled, fake_cloud):
    fake_cloud.put(product("SOAP", 4500))
    _engine(enrolled, fake_cloud).run()
    _sell(enrolled, 2)
    fake_cloud.slow = True
    fake_cloud.pull_failures_after = len(fake_cloud.pulls) + 1  # the sync's own pull works, the ack pull does not
    engine, _ = _waiting_engine(enrolled, fake_cloud, attempts=1)
    report = engine.run()
    assert (report.pushed, report.ack_pulls, report.on_the_way) == (2, 0, 2)
    assert enrolled.status()["last_error"] is None


def test_a_sync_and_its_ack_wait_never_count_every_sale(enrolled, fake_cloud, monkeypatch):
    """status() counts and sums every sale (0.13 s at a million): the engine reads its own counts."""
    fake_cloud.put(product("SOAP", 4500))
    _engine(enrolled, fake_cloud).run()
    _sell(enrolled, 3)
    fake_cloud.slow, fake_cloud.apply_at_pull = True, len(fake_cloud.pulls) + 3  # applied by the second ack pull

    def counts_every_sale():
        raise AssertionError("the sync asked for the whole status")

    monkeypatch.setattr(enrolled, "status", counts_every_sale)
    engine, _ = _waiting_engine(enrolled, fake_cloud)
    report = engine.run()
    assert (report.pushed, report.ack_pulls, report.acknowledged, report.on_the_way, report.pending) == (3, 2, 3, 0, 0)


def test_the_cloud_s_refusal_is_kept_in_the_commit_of_the_pull_s_last_page(enrolled, fake_cloud, monkeypatch):
    from shared.models import Refusal

    fake_cloud.put(*[product(f"SKU-{i:02d}", 100 + i) for i in range(15)])
    fake_cloud.refusal = Refusal(at=datetime(2026, 11, 28, 8, tzinfo=timezone.utc), code="cloned_till",
                                 reason="sale 1 arrived twice with different contents", seq=1, sale_id="a" * 32)
    monkeypatch.setattr(enrolled, "save_refusal", lambda _r: pytest.fail("the refusal took a transaction of its own"))
    _engine(enrolled, fake_cloud, page_limit=10).run()
    assert enrolled.status()["last_refusal"]["code"] == "cloned_till"
    fake_cloud.refusal = None  # head office dealt with it: the next pull's last page clears it
    _engine(enrolled, fake_cloud).run()
    assert enrolled.status()["last_refusal"] is None


def test_without_an_ack_wait_the_sync_makes_no_pull_after_its_push(enrolled, fake_cloud):
    fake_cloud.put(product("SOAP", 4500))
    _engine(enrolled, fake_cloud).run()
    _sell(enrolled, 2)
    pulls = len(fake_cloud.pulls)
    report = _engine(enrolled, fake_cloud).run()
    assert (report.ack_pulls, report.on_the_way, len(fake_cloud.pulls)) == (0, 2, pulls + 1)


def test_a_sync_with_sales_due_gets_the_queue_sdk_ready_before_it_pulls_and_one_with_none_does_not(enrolled, fake_cloud):
    fake_cloud.put(product("SOAP", 4500))
    client = fake_cloud.client()
    order = []
    client.warm_push = lambda: order.append("warm")  # observed, not replaced: the fake's sender has nothing to warm
    pull = client.fetch_pull
    client.fetch_pull = lambda *a, **k: (order.append("pull"), pull(*a, **k))[1]
    SyncEngine(enrolled, client).run()
    assert order == ["pull"]
    _sell(enrolled, 2)
    order.clear()
    report = SyncEngine(enrolled, client).run()
    assert order == ["warm", "pull"] and report.pushed == 2


# --- push ------------------------------------------------------------------------------------------


def test_a_push_packs_sales_into_signed_messages_under_64_kib_and_marks_them_pushed(enrolled, fake_cloud):
    # Random product names keep the batch from compressing away, so it needs several messages.
    fake_cloud.put(*[product(f"P{i}", 100, secrets.token_hex(90)) for i in range(1200)])
    _engine(enrolled, fake_cloud).run()
    for i in range(1200):
        enrolled.record_sale(parse_items([f"P{i}=1"]))
    report = _engine(enrolled, fake_cloud).run()
    assert report.pushed == 1200 and report.messages == len(fake_cloud.messages) >= 3
    assert all(len(m) <= limits.QUEUE_MESSAGE_BUDGET_CHARS for m in fake_cloud.messages)
    assert sorted(fake_cloud.applied) == list(range(1, 1201)) and fake_cloud.copies_ignored == 0
    assert enrolled.status()["never_pushed"] == 0 and enrolled.count_to_push() == 0


def test_voids_travel_like_sales_and_the_totals_add_up_to_the_takings(enrolled, fake_cloud):
    fake_cloud.put(product("SOAP", 4500), product("RICE", 42000))
    _engine(enrolled, fake_cloud).run()
    enrolled.record_sale(parse_items(["SOAP=2"]))
    enrolled.record_sale(parse_items(["RICE=1"]))
    enrolled.void_sale(2)
    _engine(enrolled, fake_cloud).run()
    assert sum(s.total for s in fake_cloud.applied.values()) == 9000


def test_a_pushed_sale_without_an_ack_is_pushed_again_after_ten_minutes_and_applied_once(enrolled, fake_cloud):
    fake_cloud.put(product("SOAP", 4500))
    clock = Clock()
    _engine(enrolled, fake_cloud, clock=clock).run()
    _sell(enrolled, 2)
    lost = []
    fake_cloud_send = fake_cloud.send
    fake_cloud.send = lambda url, sas, text: lost.append(text)  # the queue accepts, the message is lost
    _engine(enrolled, fake_cloud, clock=clock).run()
    assert len(lost) == 1 and not fake_cloud.applied

    fake_cloud.send = fake_cloud_send
    clock.now += timedelta(minutes=5)
    assert _engine(enrolled, fake_cloud, clock=clock).run().pushed == 0
    clock.now += timedelta(minutes=6)
    assert _engine(enrolled, fake_cloud, clock=clock).run().pushed == 2
    assert sorted(fake_cloud.applied) == [1, 2] and enrolled.get_sale(1).push_count == 2


def test_a_backlog_read_in_rounds_travels_in_about_as_few_messages_as_if_it_were_packed_at_once(enrolled, fake_cloud):
    fake_cloud.put(*[product(f"P{i}", 100, secrets.token_hex(90)) for i in range(1500)])
    _engine(enrolled, fake_cloud).run()
    for i in range(1500):
        enrolled.record_sale(parse_items([f"P{i}=1"]))
    me, due, now = enrolled.identity(), enrolled.sales_to_push(), datetime.now(timezone.utc)
    at_once = len(pack_sales(me.branch, due, me.secret, now))
    # Rounds of one and a half messages: each would end in a half-filled one, were it sent as it is.
    chunk = len(pack_sales(me.branch, due, me.secret, now)[0][0]) * 3 // 2
    rounds_alone = sum(len(pack_sales(me.branch, due[i:i + chunk], me.secret, now)) for i in range(0, len(due), chunk))
    report = _engine(enrolled, fake_cloud, push_chunk=chunk).run()
    assert report.pushed == 1500 and report.messages == len(fake_cloud.messages)
    assert at_once >= 4 and report.messages <= at_once + 1 and report.messages < rounds_alone
    assert sorted(fake_cloud.applied) == list(range(1, 1501)) and enrolled.count_to_push() == 0


def test_when_the_queue_fails_mid_push_accepted_messages_stay_pushed_and_the_rest_wait(enrolled, fake_cloud):
    _sell_bulky(enrolled, fake_cloud, 5)  # two to a message: (1, 2), (3, 4), (5)
    fake_cloud.queue_down_after = 1
    with pytest.raises(CloudUnreachable):
        _engine(enrolled, fake_cloud, push_chunk=2, push_senders=1).run()
    assert [s.seq for s in enrolled.sales_to_push()] == [3, 4, 5]
    fake_cloud.queue_down_after = None
    _engine(enrolled, fake_cloud, push_chunk=2).run()
    assert sorted(fake_cloud.applied) == [1, 2, 3, 4, 5] and fake_cloud.copies_ignored == 0


def test_with_two_puts_at_once_a_failed_one_leaves_exactly_the_sales_the_queue_did_not_take_waiting(enrolled, fake_cloud):
    _sell_bulky(enrolled, fake_cloud, 9)  # five messages
    fake_cloud.queue_down_after = 2  # whichever two puts come first are taken
    with pytest.raises(CloudUnreachable):
        _engine(enrolled, fake_cloud, push_chunk=2).run()
    taken = sorted(fake_cloud.applied)
    waiting = [s.seq for s in enrolled.sales_to_push()]
    assert len(fake_cloud.messages) == 2 and len(taken) == 4
    assert sorted(taken + waiting) == list(range(1, 10))  # each sale either taken or waiting, none both
    fake_cloud.queue_down_after = None
    _engine(enrolled, fake_cloud, push_chunk=2).run()
    assert sorted(fake_cloud.applied) == list(range(1, 10)) and fake_cloud.copies_ignored == 0


def test_a_push_has_two_puts_under_way_at_once_each_on_its_own_sender_thread(enrolled, fake_cloud):
    _sell_bulky(enrolled, fake_cloud, 8)  # four messages
    client = fake_cloud.client()
    send, lock, state = client._queue_sender, threading.Lock(), {"now": 0, "most": 0, "threads": set()}
    both = threading.Barrier(2, timeout=10)

    def sender(url, sas, text):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
            state["threads"].add(threading.current_thread().name)
        try:
            both.wait()  # the first two puts meet here: each waits until the other is under way too
        except threading.BrokenBarrierError:
            pass
        try:
            send(url, sas, text)
        finally:
            with lock:
                state["now"] -= 1

    client._queue_sender = sender  # observed at the seam, then handed to the fake's own queue
    report = SyncEngine(enrolled, client).run()
    assert report.pushed == 8 and state["most"] == 2 and len(state["threads"]) == 2
    assert sorted(fake_cloud.applied) == list(range(1, 9))


def test_a_push_sas_about_to_expire_is_renewed_with_another_pull_first(enrolled, fake_cloud):
    fake_cloud.put(product("SOAP", 4500))
    _engine(enrolled, fake_cloud).run()
    fake_cloud.pulls.clear()
    fake_cloud.sas_lifetime = timedelta(seconds=30)
    _sell(enrolled, 1)
    _engine(enrolled, fake_cloud).run()
    assert len(fake_cloud.pulls) == 2 and sorted(fake_cloud.applied) == [1]


# --- failure -----------------------------------------------------------------------------------------


def test_an_unreachable_cloud_records_the_error_and_loses_nothing(enrolled, fake_cloud):
    fake_cloud.put(product("SOAP", 4500))
    _engine(enrolled, fake_cloud).run()
    _sell(enrolled, 2)
    fake_cloud.down = True
    engine = _engine(enrolled, fake_cloud)
    with pytest.raises(CloudUnreachable):
        engine.run()
    assert engine.state == SyncState.FAILED
    status = enrolled.status()
    assert "cannot reach the cloud" in status["last_error"] and "\n" not in status["last_error"]
    assert status["pending"] == 2 and [s.seq for s in enrolled.sales_to_push()] == [1, 2]

    fake_cloud.down = False
    _engine(enrolled, fake_cloud).run()
    assert sorted(fake_cloud.applied) == [1, 2] and enrolled.status()["last_error"] is None


def test_a_second_sync_while_one_runs_stops_at_once_without_touching_anything(enrolled, fake_cloud, home):
    with FileLock(home / "sync.lock", timeout=0):
        started = time.monotonic()
        with pytest.raises(SyncAlreadyRunning, match="already running"):
            _engine(enrolled, fake_cloud).run()
        assert time.monotonic() - started < 1
    assert fake_cloud.pulls == [] and enrolled.status()["last_error"] is None


def test_syncing_an_unenrolled_home_says_so_and_records_it(store, fake_cloud):
    with pytest.raises(NotEnrolled):
        _engine(store, fake_cloud).run()
    assert "not enrolled" in store.status()["last_error"]


# --- states ------------------------------------------------------------------------------------------


def test_a_sync_goes_idle_pulling_pushing_idle_and_reports_progress(enrolled, fake_cloud):
    fake_cloud.put(product("SOAP", 4500))
    seen = []
    engine = _engine(enrolled, fake_cloud, on_progress=lambda p: seen.append(p.state))
    assert engine.state == SyncState.IDLE
    engine.run()
    assert engine.state == SyncState.IDLE
    assert [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s] == [
        SyncState.PULLING, SyncState.PUSHING, SyncState.IDLE]


def test_the_written_down_transitions_are_the_only_ones_allowed(enrolled, fake_cloud):
    assert TRANSITIONS[SyncState.IDLE] == {SyncState.PULLING}
    assert TRANSITIONS[SyncState.FAILED] == {SyncState.PULLING}
    engine = _engine(enrolled, fake_cloud)
    with pytest.raises(RuntimeError, match="cannot go from idle to pushing"):
        engine._move(SyncState.PUSHING)


def test_a_failing_progress_display_does_not_break_the_sync(enrolled, fake_cloud):
    def broken(_p):
        raise OSError("console gone")

    fake_cloud.put(product("SOAP", 4500))
    assert _engine(enrolled, fake_cloud, on_progress=broken).run().entries == 1


# --- a rotated secret ------------------------------------------------------------------------------


def test_a_rotated_secret_is_stored_then_signs_everything_after_and_sales_before_and_after_count_once(enrolled, fake_cloud):
    old = fake_cloud.secret
    fake_cloud.put(product("SOAP", 4500))
    _engine(enrolled, fake_cloud).run()
    _sell(enrolled, 2)
    _engine(enrolled, fake_cloud).run()
    new = fake_cloud.rotate()
    _sell(enrolled, 3)
    seen = []
    report = SyncEngine(enrolled, fake_cloud.client(), on_secret=seen.append).run()
    assert enrolled.identity().secret == new and seen == [new]
    assert (fake_cloud.secret, fake_cloud.previous_secret, fake_cloud.next_secret) == (new, old, None)
    assert sorted(fake_cloud.applied) == [1, 2, 3, 4, 5] and report.pushed == 3


def test_a_failure_to_save_the_new_secret_loses_nothing_and_the_next_pull_brings_it_again(enrolled, fake_cloud, monkeypatch):
    # The secret file cannot be written once (a full disk, say): mocked at the store's file write.
    import branch_client.store as store_module

    real_write = store_module.write_secret
    failures = iter([OSError("disk full")])

    def write_once_failing(path, secret):
        for exc in failures:
            raise exc
        real_write(path, secret)

    fake_cloud.put(product("SOAP", 4500))
    _engine(enrolled, fake_cloud).run()
    monkeypatch.setattr(store_module, "write_secret", write_once_failing)
    old = fake_cloud.secret
    new = fake_cloud.rotate()
    _sell(enrolled, 2)
    with pytest.raises(OSError):
        _engine(enrolled, fake_cloud).run()
    assert enrolled.identity().secret == old and fake_cloud.next_secret == new and fake_cloud.applied == {}
    _engine(enrolled, fake_cloud).run()
    assert enrolled.identity().secret == new == fake_cloud.secret
    assert sorted(fake_cloud.applied) == [1, 2]


# --- a sale too large for any message ------------------------------------------------------------------


def test_a_sale_too_large_to_send_is_set_aside_with_its_reason_and_the_sales_behind_it_are_pushed(enrolled, fake_cloud):
    fake_cloud.put(product("SOAP", 4500))
    _engine(enrolled, fake_cloud).run()
    _sell(enrolled, 1)
    insert_as_an_older_version(enrolled, bulky_sale(2))  # recorded before sale entry refused such sales
    _sell(enrolled, 2)

    report = _engine(enrolled, fake_cloud).run()
    assert sorted(fake_cloud.applied) == [1, 3, 4]
    assert [u["seq"] for u in report.unsendable] == [2]
    [kept] = enrolled.status()["unsendable"]
    assert kept["seq"] == 2 and "cannot be sent" in kept["reason"] and kept["size"] > limits.QUEUE_MESSAGE_BUDGET_CHARS
    assert enrolled.status()["last_error"] is None  # the sync itself did its work

    _sell(enrolled, 1)
    again = _engine(enrolled, fake_cloud).run()  # every later sync still pushes, and still says why 2 waits
    assert 5 in fake_cloud.applied and [u["seq"] for u in again.unsendable] == [2]
    assert [u["seq"] for u in enrolled.status()["unsendable"]] == [2]
    assert enrolled.get_sale(2).state == SaleState.PENDING  # kept here, never marked as sent


# --- voids travel with their sale or after its acknowledgement ------------------------------------------------


def test_a_void_of_a_sale_still_on_its_way_waits_for_the_sale_s_acknowledgement(enrolled, fake_cloud):
    fake_cloud.put(product("SOAP", 4500))
    _engine(enrolled, fake_cloud).run()
    _sell(enrolled, 1)
    held = []
    deliver = fake_cloud.send
    fake_cloud.send = lambda url, sas, text: held.append((url, sas, text))  # the queue holds sale 1 back
    _engine(enrolled, fake_cloud).run()
    fake_cloud.send = deliver
    enrolled.void_sale(1)
    assert _engine(enrolled, fake_cloud).run().pushed == 0  # the cloud does not hold sale 1 yet: the void waits
    deliver(*held[0])
    _engine(enrolled, fake_cloud).run()                     # the pull acknowledges sale 1, then the void goes
    assert sorted(fake_cloud.applied) == [1, 2] and fake_cloud.applied[2].voids == 1


# --- a till upgraded mid-day: older events pending beside the complete record --------------------------------


def test_pending_older_events_and_new_complete_records_are_pushed_in_messages_of_one_version_and_all_acknowledged(
        enrolled, fake_cloud):
    from branch_client.sale_entry import parse_pay
    from tests.builders import make_line, make_sale

    fake_cloud.put(product("SOAP", 4500))
    _engine(enrolled, fake_cloud).run()
    for seq in (1, 2):  # rung up by the branchsync before the upgrade, never pushed
        insert_as_an_older_version(enrolled, make_sale(seq, [make_line("SOAP", "1", 4500)]))
    enrolled.record(parse_items(["SOAP=2"]), payments=[parse_pay("bkash:TX1=10"), parse_pay("cash=100")])  # 3
    enrolled.refund("1", [(1, "1")])     # 4: a v3 refund of an older sale: goes once that sale is acknowledged
    enrolled.void("3")                   # 5: a v3 void, in the message of its v3 sale
    enrolled.void("2")                   # 6: the void of an older sale keeps its version; cut from it by 3-5
    assert [enrolled.get_sale(n).sale.is_v3 for n in range(1, 7)] == [False, False, True, True, True, False]

    first = _engine(enrolled, fake_cloud).run()
    # v1 [1, 2], v3 [3, 5], and 4 and 6 (each cut from its sale's message) wait for that sale's acknowledgement.
    assert sorted(fake_cloud.applied) == [1, 2, 3, 5] and (first.pushed, first.messages) == (4, 2)
    _engine(enrolled, fake_cloud).run()
    assert sorted(fake_cloud.applied) == [1, 2, 3, 4, 5, 6] and fake_cloud.applied_through == 6
    _engine(enrolled, fake_cloud).run()  # the last pull carries the acknowledgement of all of them
    assert enrolled.status()["pending"] == 0 and fake_cloud.refusal is None
    assert [fake_cloud.applied[s].kind for s in (4, 5, 6)] == ["refund", "void", "void"]


def test_a_push_sends_every_kind_of_stored_event_as_recorded_without_validating_one_again(enrolled, fake_cloud,
                                                                                         monkeypatch):
    from shared.encoding import from_queue_text, open_frame, parse_frame
    from shared.models import Sale, SalesBatch
    from tests.builders import make_sale, make_void

    fake_cloud.put(product("SOAP", 4500), product("RICE", 42000))
    _engine(enrolled, fake_cloud).run()
    # v1 events as an older branchsync stored them, then the complete record (v3) of this one.
    first = make_sale(1)
    insert_as_an_older_version(enrolled, first)
    insert_as_an_older_version(enrolled, make_sale(2))
    insert_as_an_older_version(enrolled, make_void(3, first))
    enrolled.open_shift("rahim", 50000)
    sold = enrolled.record_sale(parse_items(["SOAP=2", "RICE=1"]), cashier="rahim")
    enrolled.record_sale(parse_items(["SOAP=1"]), cashier="rahim")
    enrolled.void(sold.seq + 1, reason="rang twice", cashier="rahim")
    enrolled.refund(sold.seq, [(1, "1")], cashier="rahim", reason="broken")
    enrolled.close_shift(50000 + sold.total, cashier="rahim")
    stored = [r.sale for r in enrolled.oldest_unacknowledged(limit=100)]
    assert {s.kind.value for s in stored} == {"sale", "void", "refund", "shift_close"} and len(stored) == 8

    validated, batches = [], []
    validate = Sale.model_validate_json.__func__
    monkeypatch.setattr(Sale, "model_validate_json", classmethod(lambda cls, *a, **k: validated.append(1) or validate(cls, *a, **k)))
    monkeypatch.setattr(SalesBatch, "of", classmethod(lambda cls, *a: batches.append(1) or cls(*a)))
    fake_cloud.slow = True  # the messages wait on the queue: nothing of the cloud runs during the push
    report = _engine(enrolled, fake_cloud).run()
    assert report.pushed == 8 and validated == [] and batches == []
    monkeypatch.undo()

    secret = enrolled.identity().secret
    opened = [open_frame(parse_frame(from_queue_text(text)), secret) for text in fake_cloud.held]
    assert [b.v for b in opened] == [1, 3]
    assert [s for batch in opened for s in batch.sales] == stored
    fake_cloud.apply_at_pull = 1
    _engine(enrolled, fake_cloud).run()
    assert sorted(fake_cloud.applied) == list(range(1, 9)) and enrolled.pending_count() == 0


def test_a_push_marks_what_the_queue_accepted_in_fewer_commits_than_messages(enrolled, fake_cloud, monkeypatch):
    _sell_bulky(enrolled, fake_cloud, 10)
    marks = []
    mark = enrolled.mark_pushed
    monkeypatch.setattr(enrolled, "mark_pushed", lambda seqs, *a: marks.append(list(seqs)) or mark(seqs, *a))
    report = _engine(enrolled, fake_cloud).run()
    # One round of reading (1,000 sales) and the rest: a commit after each, and one for the last message.
    assert report.messages == 5 and len(marks) <= 3
    assert sorted(seq for m in marks for seq in m) == list(range(1, 11)) and enrolled.status()["never_pushed"] == 0
    assert sorted(fake_cloud.applied) == list(range(1, 11)) and enrolled.count_to_push() == 0
