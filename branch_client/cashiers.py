"""Cashiers' names and PINs, without I/O: what a name and a PIN may be, how a PIN is kept, and
when wrong PINs lock a name.

A PIN is stored only as a salted scrypt hash (`scrypt$n$r$p$salt$hash`, hex), checked in
constant time; it stays in this PC's database, is never sent to head office and never
written to a log.

After MAX_WRONG_PINS wrong PINs in a row for one name, that name is locked for LOCKED_FOR:
not even the right PIN signs in until then (or until the manager's `branchsync cashier
unlock NAME`). Names nobody has are counted and locked the same way, so the answer never
tells whether a name exists.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from .errors import BadInput

MAX_WRONG_PINS = 5
LOCKED_FOR = timedelta(minutes=5)

NAME_MAX_CHARS = 40
PIN_DIGITS = (4, 8)
# scrypt's cost: 16 MiB and a few tens of milliseconds a check, so a stolen database does not
# give up a 4-digit PIN at once, while a sign-in stays instant.
_N, _R, _P = 2 ** 14, 8, 1
_SALT_BYTES = 16


def check_name(name: str) -> str:
    clean = " ".join(str(name).split())
    if not clean or len(clean) > NAME_MAX_CHARS or not all(c.isprintable() for c in clean):
        raise BadInput(f"a cashier's name is 1 to {NAME_MAX_CHARS} letters, e.g. Rahim")
    return clean


def check_pin(pin: str) -> str:
    low, high = PIN_DIGITS
    if not (pin.isascii() and pin.isdigit() and low <= len(pin) <= high):
        raise BadInput(f"a PIN is {low} to {high} digits")
    return pin


def _scrypt(pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(pin.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32)


def hash_pin(pin: str) -> str:
    salt = secrets.token_bytes(_SALT_BYTES)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${_scrypt(check_pin(pin), salt, _N, _R, _P).hex()}"


def pin_matches(pin: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        return hmac.compare_digest(_scrypt(pin, bytes.fromhex(salt), int(n), int(r), int(p)), bytes.fromhex(digest))
    except ValueError:
        return False


# Checked against when a name is unknown, so a wrong name takes as long as a wrong PIN.
DUMMY_HASH = f"scrypt${_N}${_R}${_P}${'00' * _SALT_BYTES}${'00' * 32}"


@dataclass(frozen=True)
class Tries:
    """Wrong PINs in a row for one name, and until when it is locked (None: not locked)."""

    wrong: int = 0
    locked_until: datetime | None = None

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until

    def after_wrong_pin(self, now: datetime) -> "Tries":
        """One more wrong PIN; a lock that has run out starts the count again."""
        wrong = 1 if self.locked_until is not None else self.wrong + 1
        return Tries(wrong, now + LOCKED_FOR if wrong >= MAX_WRONG_PINS else None)

    @property
    def left(self) -> int:
        """Wrong PINs still allowed before the lock."""
        return max(0, MAX_WRONG_PINS - self.wrong)


class CashierLocked(BadInput):
    """A sign-in with a name locked after too many wrong PINs."""

    code = "cashier_locked"

    def __init__(self, name: str, until: datetime):
        self.name, self.until = name, until
        super().__init__(f"{name} is locked after {MAX_WRONG_PINS} wrong PINs until {until.isoformat(timespec='seconds')}; "
                         f"wait, or the manager unlocks it with 'branchsync cashier unlock {name}'")
