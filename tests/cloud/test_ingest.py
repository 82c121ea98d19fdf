"""Applying queue messages in the branch's turn: messages opened meanwhile are applied together (real Azurite)."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from branchsync_cloud import apply, conflicts
from branchsync_cloud.service import Service
from branchsync_cloud.settings import Settings
from branchsync_cloud.table_store import TableStore
from shared.encoding import encode_batch, from_queue_text, parse_frame
from tests.builders import make_batch, make_sale
from tests.cloud.conftest import ADMIN_KEY
from tests.cloud.test_service import enroll

pytestmark = pytest.mark.azurite


@pytest.fixture
def table_service(storage, table_prefix, clock) -> Service:
    settings = Settings(storage=storage, admin_key=ADMIN_KEY, public_url="https://cloud.example", table_prefix=table_prefix)
    return Service(TableStore(storage, table_prefix), settings, clock)


def held_first_turn(service: Service, branch: str, first: bytes, others: list[bytes]) -> list:
    """Apply `first`, and `others` from their own threads while its turn is held; the outcomes in order.

    The first apply's ledger read waits until the others are opened and queued for the
    branch's next turn (a gate around the real TableStore read, no fake).
    """
    store = service.store
    read = store.get_ledger_and_days
    gate = threading.Event()

    def gated(*args):
        gate.wait(10)
        return read(*args)

    store.get_ledger_and_days = gated
    with ThreadPoolExecutor(len(others) + 1) as pool:
        head = pool.submit(service.apply_message, first)
        while branch not in conflicts._busy:
            time.sleep(0.005)
        rest = [pool.submit(service.apply_message, body) for body in others]
        wait_for_queued(branch, len(others))
        gate.set()
        return [head.result(10)] + [f.result(10) for f in rest]


def body(batch, secret) -> bytes:
    return from_queue_text(encode_batch(batch, secret))


def counted_record_reads(store, gate: threading.Event | None = None) -> list[str]:
    """The branch-record reads the store makes from now on; with `gate`, the first one, once read, waits for it."""
    reads: list[str] = []
    read = store.get_branch

    def counted(name):
        record = read(name)
        reads.append(name)
        if gate is not None and len(reads) == 1:
            gate.wait(10)
        return record

    store.get_branch = counted
    return reads


def wait_for_queued(key: str, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(conflicts._waiting.get(key, [])) < count:
        assert time.monotonic() < deadline, f"{count} callers never queued for {key}"
        time.sleep(0.005)


def test_messages_of_one_branch_opened_while_its_record_is_read_share_the_next_read(table_service):
    secret = enroll(table_service, "record-1")
    messages = [body(make_batch("record-1", range(lo, lo + 5)), secret) for lo in range(1, 26, 5)]
    gate = threading.Event()
    reads = counted_record_reads(table_service.store, gate)
    with ThreadPoolExecutor(len(messages)) as pool:
        first = pool.submit(table_service.apply_message, messages[0])
        while not reads:
            time.sleep(0.005)
        rest = [pool.submit(table_service.apply_message, m) for m in messages[1:]]
        wait_for_queued("record:record-1", 4)
        gate.set()
        outcomes = [first.result(10)] + [f.result(10) for f in rest]
    assert [o.status for o in outcomes] == ["applied"] * 5
    # The first message's read, then one for the four that came while it ran: 2, not 5.
    assert reads == ["record-1", "record-1"]
    assert table_service.store.get_ledger("record-1").apply.applied_through == 25


def test_a_message_that_comes_while_its_branchs_record_is_read_waits_for_a_read_of_its_own(table_service):
    # A read that began before a message came is not its read: a revocation in between refuses it.
    secret = enroll(table_service, "record-2")
    gate = threading.Event()
    reads = counted_record_reads(table_service.store, gate)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(table_service.apply_message, body(make_batch("record-2", range(1, 4)), secret))
        while not reads:
            time.sleep(0.005)
        table_service.revoke_branch("record-2")
        later = pool.submit(table_service.apply_message, body(make_batch("record-2", range(4, 7)), secret))
        wait_for_queued("record:record-2", 1)
        gate.set()
        outcomes = [first.result(10), later.result(10)]
    assert [(o.status, o.code) for o in outcomes] == [("applied", None), ("dead_lettered", "branch_revoked")]
    assert len(reads) >= 2


def test_messages_opened_during_the_branchs_turn_are_applied_in_one_turn_with_one_read_and_one_commit(table_service):
    secret = enroll(table_service, "turns-1")
    messages = [body(make_batch("turns-1", range(lo, lo + 10)), secret) for lo in range(1, 51, 10)]
    store = table_service.store
    reads = counted_record_reads(store)
    before = store.ops
    outcomes = held_first_turn(table_service, "turns-1", messages[0], messages[1:])
    assert [o.status for o in outcomes] == ["applied"] * 5 and [o.new_sales for o in outcomes] == [10] * 5
    # The branch record is read for the messages (one read or more, at most one each); the
    # first turn reads the ledger and commits, and so does the one turn of the other four:
    # reads + 2 + 2, where one turn each took 5 x 3.
    assert 1 <= len(reads) <= 5
    assert store.ops - before == len(reads) + 4 == sum(o.ops for o in outcomes)
    assert store.get_ledger("turns-1").apply.applied_through == 50
    # Each message's sales are still a chunk row of their own.
    assert [(c.first_seq, c.last_seq) for c in store.iter_chunks("turns-1")] == [(lo, lo + 9) for lo in range(1, 51, 10)]


def test_a_refused_message_among_those_applied_together_is_dead_lettered_alone(table_service, clock):
    secret = enroll(table_service, "turns-2")
    table_service.apply_message(body(make_batch("turns-2", range(1, 4)), secret))
    good = [body(make_batch("turns-2", range(lo, lo + 3)), secret) for lo in (4, 7)]
    cloned = body(make_batch("turns-2", [make_sale(2), make_sale(3)]), secret)  # numbers applied, other sales
    assert table_service.store.list_dead_letters(clock.now.date()) == []  # (its table is made now, not counted below)
    ops = table_service.store.ops
    outcomes = held_first_turn(table_service, "turns-2", good[0], [good[1], cloned])
    assert [(o.status, o.code) for o in outcomes] == [("applied", None), ("applied", None), ("dead_lettered", "cloned_till")]
    # The attempt together and the applies alone after it are all counted, once.
    assert sum(o.ops for o in outcomes) == table_service.store.ops - ops
    assert table_service.store.get_ledger("turns-2").apply.applied_through == 9
    [letter] = table_service.store.list_dead_letters(clock.now.date())
    assert letter.raw == cloned


def test_messages_that_overlap_are_applied_one_after_another_in_the_turn(table_service):
    secret = enroll(table_service, "turns-3")
    sales = [make_sale(n) for n in range(1, 9)]
    first = body(make_batch("turns-3", sales[:2]), secret)
    resent = [body(make_batch("turns-3", sales[2:6]), secret), body(make_batch("turns-3", sales[4:8]), secret)]
    outcomes = held_first_turn(table_service, "turns-3", first, resent)
    assert [o.status for o in outcomes] == ["applied"] * 3 and (outcomes[0].new_sales, outcomes[0].duplicates) == (2, 0)
    # Whichever of the two was applied first, the other's shared sales changed nothing.
    assert sorted((o.new_sales, o.duplicates) for o in outcomes[1:]) == [(2, 2), (4, 0)]
    assert table_service.store.get_ledger("turns-3").apply.applied_through == 8


def test_a_message_applied_whole_is_stored_as_it_came_and_read_back_as_the_same_sales(table_service, monkeypatch):
    secret = enroll(table_service, "as-sent-1")
    encoded = []
    encode_run = apply.encode_run
    monkeypatch.setattr(apply, "encode_run", lambda run: encoded.append(len(run)) or encode_run(run))
    batch = make_batch("as-sent-1", range(1, 21))
    table_service.apply_message(body(batch, secret))
    # Resent with sales around it: only the new ones, a part of the message, are encoded anew.
    table_service.apply_message(body(make_batch("as-sent-1", [*batch.sales[15:], *map(make_sale, range(21, 26))]), secret))
    assert encoded == [5]
    whole, part = table_service.store.iter_chunks("as-sent-1")
    assert whole.sales == batch.sales and (part.first_seq, part.last_seq) == (21, 25)
    entity = table_service.store._table("sales").get_entity("as-sent-1", "c0000000000000001")
    assert entity["encoding"] == "zlib+batch" and entity["data"] == parse_frame(body(batch, secret)).compressed
