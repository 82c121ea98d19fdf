"""Optimistic writes that lose a race re-read and re-plan, a bounded number of times.

Past the bound the Conflict goes to the caller, who retries later: the queue redelivers
the message, an admin sees 503.

Writers of one key inside one process take turns (`one_at_a_time`): the host runs a
batch of queue messages on its thread pool at once, and a backlog's messages all belong
to one branch, so without turns they would all race for that branch's ledger ETag and the
losers would re-read, re-plan and, past the bound, wait out the visibility timeout. The
ETag still decides between processes (several instances, or an admin replay).
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from .store import Conflict

CONFLICT_ATTEMPTS = 8

# One lock per key ever seen in this process: a few bytes per branch.
_turns: dict[str, threading.Lock] = {}
_turns_guard = threading.Lock()


def retrying() -> Retrying:
    """Call the returned object with an attempt that re-reads what it plans from; Conflict retries it."""
    return Retrying(
        retry=retry_if_exception_type(Conflict), stop=stop_after_attempt(CONFLICT_ATTEMPTS),
        wait=wait_random_exponential(multiplier=0.02, max=0.5), reraise=True,
    )


@contextmanager
def one_at_a_time(key: str) -> Iterator[None]:
    """Hold `key`'s turn in this process for the block; other threads writing `key` wait for it."""
    with _turns_guard:
        turn = _turns.setdefault(key, threading.Lock())
    with turn:
        yield
