"""Optimistic writes that lose a race re-read and re-plan, a bounded number of times.

Past the bound the Conflict goes to the caller, who retries later: the queue redelivers
the message, an admin sees 503.

Writers of one key inside one process take turns (`together`): the host runs a batch of
queue messages on its thread pool at once, and a backlog's messages all belong to one
branch, so without turns they would all race for that branch's ledger ETag and the losers
would re-read, re-plan and, past the bound, wait out the visibility timeout. The ETag still
decides between processes (several instances, or an admin replay). A writer that finds the
turn taken does not wait idle: the thread whose turn comes next takes every item queued for
the key meanwhile and handles them in one go, so a backlog's messages that the host runs at
once are applied in a few turns instead of one each.
"""

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from .store import Conflict

CONFLICT_ATTEMPTS = 8


def retrying() -> Retrying:
    """Call the returned object with an attempt that re-reads what it plans from; Conflict retries it."""
    return Retrying(
        retry=retry_if_exception_type(Conflict), stop=stop_after_attempt(CONFLICT_ATTEMPTS),
        wait=wait_random_exponential(multiplier=0.02, max=0.5), reraise=True,
    )


Item = TypeVar("Item")
Result = TypeVar("Result")


class _Ticket(Generic[Item]):
    __slots__ = ("item", "done", "result", "error")

    def __init__(self, item):
        self.item, self.done, self.result, self.error = item, False, None, None


_waiting: dict[str, list[_Ticket]] = {}  # per key: items queued for the next turn
_busy: set[str] = set()  # keys whose turn is being taken
_handed = threading.Condition()


def together(key: str, item: Item, handle: Callable[[Sequence[Item]], Sequence["Result | BaseException"]]) -> Result:
    """`handle(items)` for `item` and whatever else is queued for `key` when its turn comes; returns `item`'s result.

    One thread at a time handles a key's items; a thread that finds the turn taken queues
    its item, and the next thread to take the turn handles all the queued ones in one call.
    `handle` returns one result per item, in order; a result that is an exception is raised
    to that item's caller alone. Whatever `handle` itself raises is raised to every caller
    whose item it held.
    """
    ticket = _Ticket(item)
    leading = False
    with _handed:
        _waiting.setdefault(key, []).append(ticket)
        while not ticket.done and key in _busy:
            _handed.wait()
        if not ticket.done:
            leading = True
            _busy.add(key)
            taken = _waiting.pop(key)
    if leading:
        try:
            results = list(handle([t.item for t in taken]))
            if len(results) != len(taken):
                raise RuntimeError(f"{len(results)} results for {len(taken)} items")
        except BaseException as exc:
            results = [exc] * len(taken)
        with _handed:
            for t, result in zip(taken, results):
                if isinstance(result, BaseException):
                    t.error = result
                else:
                    t.result = result
                t.done = True
            _busy.discard(key)
            _handed.notify_all()
    if ticket.error is not None:
        raise ticket.error
    return ticket.result
