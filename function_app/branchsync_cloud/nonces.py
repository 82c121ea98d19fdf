"""Replay protection for signed branch requests, as pure functions (no I/O).

A signed request is accepted only within CLOCK_SKEW_SECONDS of the cloud's clock, so its
nonce has to be remembered only that long. Nonces are kept in one table per hour of the
request's own signed time: a replay carries the very same time and nonce, so it meets the
row its original wrote, in the same table. Once an hour lies wholly outside the window
(with an hour spare for instances whose clocks differ), its table is dropped with one
delete however many nonces it holds, so the store never grows beyond two or three hours
of requests and purging costs no per-nonce operations.
"""

from collections.abc import Iterable

from shared.limits import CLOCK_SKEW_SECONDS

BUCKET_SECONDS = 3600
TABLE_BASE = "nonces"
# Hours since 1970 have 6 digits until the year 2084; 8 keep the names in key order long after.
BUCKET_DIGITS = 8


def hour_bucket(timestamp: int) -> int:
    """The hour (since 1970) a request's signed time falls in."""
    return timestamp // BUCKET_SECONDS


def table_name(bucket: int) -> str:
    return f"{TABLE_BASE}{bucket:0{BUCKET_DIGITS}d}"


def bucket_of_table(name: str) -> int | None:
    """The bucket of a nonce table's name (without the store's prefix), None for any other name."""
    digits = name[len(TABLE_BASE):]
    if not name.startswith(TABLE_BASE) or len(digits) != BUCKET_DIGITS or not digits.isdigit():
        return None
    return int(digits)


def stale_buckets(buckets: Iterable[int], now: float) -> list[int]:
    """Buckets no acceptable request can fall in any more: every second of them is out of the window."""
    oldest_live = hour_bucket(int(now) - CLOCK_SKEW_SECONDS) - 1
    return sorted(b for b in buckets if b < oldest_live)
