"""The program's version, found cheaply (no pydantic, SQLAlchemy or azure imports).

A PyInstaller build carries it as the data file `branch_client/VERSION` (written by
packaging/exe/branchsync.spec from pyproject.toml); an installed checkout has it in the
distribution's metadata.
"""

import functools
from pathlib import Path

VERSION_FILE = Path(__file__).with_name("VERSION")


@functools.cache  # every pull names it; reading the distribution's metadata takes about 2 ms
def version() -> str:
    try:
        bundled = VERSION_FILE.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        bundled = ""
    if bundled:
        return bundled
    from importlib import metadata

    try:
        return metadata.version("branchsync")
    except metadata.PackageNotFoundError:
        return "unknown"
