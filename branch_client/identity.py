"""The branch's identity from enrollment, and the secret file that protects its key.

The branch name and cloud URL live in the database's meta table. The secret lives in
its own file `secret` in the data home, written with mode 0600 (owner only) through a
temporary file and an atomic rename, and is never printed or logged.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import StoreError


@dataclass(frozen=True)
class Identity:
    branch: str
    cloud_url: str
    secret: str = field(repr=False)


def write_secret(path: Path, secret: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    try:
        os.write(fd, secret.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def read_secret(path: Path) -> str | None:
    try:
        value = path.read_text("ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"cannot read the branch secret at {path} ({type(exc).__name__}); "
                         "check its permissions or enroll again with --force") from exc
    return value or None
