"""Where a branch keeps its data: the data home.

Resolution order: `--home DIR`, else the environment variable `BRANCHSYNC_HOME`, else
`%PROGRAMDATA%\\branchsync` on Windows (shared by every user of the till PC and by the
scheduled task), else the platformdirs user data directory "branchsync". Never next to
the executable: a PyInstaller build unpacks to a temporary folder and Program Files is
not writable.
"""

import os
import sys
from collections.abc import Mapping
from pathlib import Path, PureWindowsPath

import platformdirs

APP_NAME = "branchsync"
HOME_ENV = "BRANCHSYNC_HOME"

DB_FILE = "branchsync.db"
SECRET_FILE = "secret"
LOCK_FILE = "sync.lock"


def data_home(cli_home: str | os.PathLike | None = None, env: Mapping[str, str] | None = None,
              platform: str | None = None) -> Path:
    """The data home; not created here."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if cli_home:
        return Path(cli_home).expanduser()
    if env.get(HOME_ENV):
        return Path(env[HOME_ENV]).expanduser()
    if platform == "win32":
        base = env.get("PROGRAMDATA") or r"C:\ProgramData"
        return Path(str(PureWindowsPath(base) / APP_NAME))
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def db_path(home: Path) -> Path:
    return home / DB_FILE


def secret_path(home: Path) -> Path:
    return home / SECRET_FILE


def lock_path(home: Path) -> Path:
    return home / LOCK_FILE
