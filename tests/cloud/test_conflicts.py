"""Turns per key: items queued while a key's turn is held are handled together in the next one."""

import threading
import time

import pytest

from branchsync_cloud import conflicts
from branchsync_cloud.conflicts import together


def queued(key: str, count: int) -> None:
    """Wait until `count` items wait for `key`'s next turn."""
    deadline = time.monotonic() + 10
    while len(conflicts._waiting.get(key, [])) < count:
        assert time.monotonic() < deadline, "the items were never queued"
        time.sleep(0.01)


def test_items_queued_while_a_turn_is_held_are_handled_in_one_call_of_the_next_turn():
    calls: list[list[int]] = []
    held = threading.Event()

    def handle(items):
        calls.append(list(items))
        if items == [0]:
            held.wait(10)  # the first turn lasts until the others are queued
        return [n * 10 for n in items]

    results: dict[int, int] = {}
    threads = [threading.Thread(target=lambda n=n: results.__setitem__(n, together("k1", n, handle))) for n in range(4)]
    threads[0].start()
    while not calls:
        time.sleep(0.01)
    for t in threads[1:]:
        t.start()
    queued("k1", 3)
    held.set()
    for t in threads:
        t.join(10)
    assert calls[0] == [0] and sorted(calls[1]) == [1, 2, 3] and len(calls) == 2
    assert results == {0: 0, 1: 10, 2: 20, 3: 30}


def test_an_exception_among_the_results_is_raised_to_its_own_caller_alone():
    held = threading.Event()
    started = threading.Event()

    def handle(items):
        if items == ["first"]:
            started.set()
            held.wait(10)
        return [ValueError(f"{i} refused") if i == "bad" else f"{i} done" for i in items]

    out: dict[str, object] = {}

    def run(item):
        try:
            out[item] = together("k2", item, handle)
        except ValueError as exc:
            out[item] = exc

    first = threading.Thread(target=run, args=("first",))
    first.start()
    started.wait(10)
    others = [threading.Thread(target=run, args=(i,)) for i in ("good", "bad")]
    for t in others:
        t.start()
    queued("k2", 2)
    held.set()
    for t in [first, *others]:
        t.join(10)
    assert out["first"] == "first done" and out["good"] == "good done"
    assert isinstance(out["bad"], ValueError) and str(out["bad"]) == "bad refused"


def test_what_the_handler_raises_reaches_every_caller_of_its_turn_and_the_key_is_free_again():
    def failing(items):
        raise RuntimeError("storage is down")

    with pytest.raises(RuntimeError, match="storage is down"):
        together("k3", 1, failing)
    assert together("k3", 2, lambda items: [i + 1 for i in items]) == 3
