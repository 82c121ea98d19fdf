"""Optimistic writes that lose a race re-read and re-plan, a bounded number of times.

Past the bound the Conflict goes to the caller, who retries later: the queue redelivers
the message, an admin sees 503.
"""

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from .store import Conflict

CONFLICT_ATTEMPTS = 8


def retrying() -> Retrying:
    """Call the returned object with an attempt that re-reads what it plans from; Conflict retries it."""
    return Retrying(
        retry=retry_if_exception_type(Conflict), stop=stop_after_attempt(CONFLICT_ATTEMPTS),
        wait=wait_random_exponential(multiplier=0.02, max=0.5), reraise=True,
    )
