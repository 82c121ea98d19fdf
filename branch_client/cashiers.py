"""Cashiers' names and PINs, without I/O: what a name and a PIN may be, and how a PIN is kept.

A PIN is stored only as a salted scrypt hash (`scrypt$n$r$p$salt$hash`, hex), checked in
constant time; it stays in this PC's database, is never sent to head office and never
written to a log.
"""

import hashlib
import hmac
import secrets

from .errors import BadInput

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
