"""The branch's identity from enrollment, and the secret file that protects its key.

The branch name and cloud URL live in the database's meta table. The secret lives in
its own file `secret` in the data home, written through a temporary file and an atomic
rename, and is never printed or logged. Its contents are one of two formats:

- on Windows, `branchsync-dpapi-1:` followed by base64 of a DPAPI blob
  (CryptProtectData, machine scope, with this program's entropy): the file is useless on
  any other PC, in a copied data home or a stolen backup disk;
- elsewhere (and as written before DPAPI was used), the secret itself, mode 0600 (owner only).

Either format is read on every platform that can read it, so an existing plain file keeps
working after an upgrade and is protected the next time the secret is written (a rotation).

Machine scope rather than the Windows account's: the scheduled sync runs as S4U (no
password, so no access to the account's DPAPI keys) or as SYSTEM, and must read the
secret the cashier's account wrote. Machine scope lets every account of the PC unseal the
blob, so local accounts are kept out by the data home's access list, which enrollment sets
before the secret is written (branch_client.permissions: SYSTEM, Administrators and the
till's account only): who cannot read the file cannot unseal it.
"""

import base64
import binascii
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .errors import StoreError

MARKER = b"branchsync-dpapi-1:"
# Bound to this program: another program calling CryptUnprotectData on the blob needs it too.
ENTROPY = b"branchsync branch secret v1"
CRYPTPROTECT_UI_FORBIDDEN = 0x1
CRYPTPROTECT_LOCAL_MACHINE = 0x4


@dataclass(frozen=True)
class Identity:
    branch: str
    cloud_url: str
    secret: str = field(repr=False)


class Protector(Protocol):
    """Seals the secret's bytes to this PC and opens them again (the seam tests replace)."""

    def protect(self, data: bytes) -> bytes: ...
    def unprotect(self, blob: bytes) -> bytes: ...


class DpapiProtector:
    """Windows DPAPI through ctypes: CryptProtectData / CryptUnprotectData, never showing UI."""

    flags = CRYPTPROTECT_UI_FORBIDDEN | CRYPTPROTECT_LOCAL_MACHINE

    def protect(self, data: bytes) -> bytes:
        return _dpapi("CryptProtectData", data, self.flags)

    def unprotect(self, blob: bytes) -> bytes:
        return _dpapi("CryptUnprotectData", blob, self.flags)


def default_protector() -> Protector | None:
    return DpapiProtector() if sys.platform == "win32" else None


_PLATFORM = object()  # the default: DPAPI on Windows, the plain 0600 file elsewhere


def write_secret(path: Path, secret: str, protector: "Protector | None | object" = _PLATFORM) -> None:
    protector = default_protector() if protector is _PLATFORM else protector
    data = secret.encode("ascii")
    if protector is not None:
        data = MARKER + base64.b64encode(protector.protect(data))
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def read_secret(path: Path, protector: "Protector | None | object" = _PLATFORM) -> str | None:
    protector = default_protector() if protector is _PLATFORM else protector
    try:
        data = path.read_bytes().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot read the branch secret at {path} ({type(exc).__name__}); "
                         "check its permissions or enroll again with --force") from exc
    if data.startswith(MARKER):
        data = _unprotected(path, data[len(MARKER):], protector)
    try:
        value = data.decode("ascii").strip()
    except UnicodeDecodeError as exc:
        raise StoreError(f"the branch secret at {path} is damaged; enroll again with --force") from exc
    return value or None


def _unprotected(path: Path, encoded: bytes, protector: Protector | None) -> bytes:
    if protector is None:
        raise StoreError(f"the branch secret at {path} is sealed with Windows DPAPI and can only be read on the "
                         "Windows PC that enrolled; enroll this PC with its own code")
    try:
        return protector.unprotect(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise StoreError(f"the branch secret at {path} is damaged; enroll again with --force") from exc
    except OSError as exc:
        raise StoreError(f"the branch secret at {path} cannot be unsealed on this PC (it was sealed on another PC, "
                         f"or Windows refused: {type(exc).__name__}); enroll this PC with its own code") from exc


def _dpapi(name: str, data: bytes, flags: int) -> bytes:
    """One CryptProtectData / CryptUnprotectData call; the output is freed with LocalFree."""
    import ctypes
    from ctypes import wintypes

    class Blob(ctypes.Structure):
        _fields_ = [("cbData", wintypes.DWORD), ("pbData", ctypes.c_void_p)]

    crypt32 = ctypes.WinDLL("crypt32", use_last_error=True)
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    call = getattr(crypt32, name)
    call.argtypes = [ctypes.POINTER(Blob), ctypes.c_void_p, ctypes.POINTER(Blob), ctypes.c_void_p,
                     ctypes.c_void_p, wintypes.DWORD, ctypes.POINTER(Blob)]
    call.restype = wintypes.BOOL
    kernel32.LocalFree.argtypes = [ctypes.c_void_p]
    kernel32.LocalFree.restype = ctypes.c_void_p

    source = ctypes.create_string_buffer(data, len(data))
    salt = ctypes.create_string_buffer(ENTROPY, len(ENTROPY))
    blob_in = Blob(len(data), ctypes.cast(source, ctypes.c_void_p))
    entropy = Blob(len(ENTROPY), ctypes.cast(salt, ctypes.c_void_p))
    blob_out = Blob()
    if not call(ctypes.byref(blob_in), None, ctypes.byref(entropy), None, None, flags, ctypes.byref(blob_out)):
        raise ctypes.WinError(ctypes.get_last_error())
    try:
        return ctypes.string_at(blob_out.pbData, blob_out.cbData)
    finally:
        kernel32.LocalFree(blob_out.pbData)
