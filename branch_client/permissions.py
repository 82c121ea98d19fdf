"""Who may read and write the data home on Windows: SYSTEM, Administrators and the till's account.

Under %PROGRAMDATA% a new folder inherits read access for every local user (BUILTIN\\Users),
and the secret is sealed with DPAPI machine scope, which any account of the PC can unseal.
So at enrollment the data home gets its own access list and stops inheriting:

    NT AUTHORITY\\SYSTEM     full control  (S-1-5-18: a task with --principal system)
    BUILTIN\\Administrators  full control  (S-1-5-32-544: whoever looks after the PC)
    the till's account      modify        (the account that enrolled: the cashier's, the one
                                           the S4U scheduled task runs as)

each inherited by every file and folder below (OI)(CI). Because the entries are inherited,
whoever creates a file later (the database's -wal and -shm files, a log, a rotated secret,
a backup; the cashier at the till, the task as the same account or as SYSTEM, an elevated
prompt) creates it with the same three entries, so both the till and the task can write
it. Nobody else can read the secret file, so nobody else can hand its blob to DPAPI.

Built-in accounts are named by SID (`*S-1-5-18`), which icacls accepts whatever the
Windows display language ("NT-AUTORITÄT\\SYSTEM"). Pure functions build the icacls
command lines and judge what icacls reports; `secure_home` and `inspect_home` run them,
on Windows only.
"""

import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

SYSTEM_SID = "S-1-5-18"
ADMINISTRATORS_SID = "S-1-5-32-544"
# SDDL spells some well-known SIDs with two letters.
SDDL_ALIASES = {"SY": SYSTEM_SID, "BA": ADMINISTRATORS_SID, "BU": "S-1-5-32-545", "WD": "S-1-1-0",
                "AU": "S-1-5-11", "CO": "S-1-3-0", "IU": "S-1-5-4", "OW": "S-1-3-4", "LS": "S-1-5-19",
                "NS": "S-1-5-20", "PU": "S-1-5-32-547", "BG": "S-1-5-32-546"}
FULL, MODIFY = "F", "M"
INHERIT = "(OI)(CI)"

# Access mask bits (winnt.h) that let an account change a file's content and replace it.
FILE_WRITE_DATA, FILE_APPEND_DATA, DELETE = 0x2, 0x4, 0x10000
GENERIC_ALL, GENERIC_WRITE = 0x10000000, 0x40000000
_RIGHTS = {"FA": 0x1F01FF, "FR": 0x120089, "FW": 0x120116, "FX": 0x1200A0, "GA": GENERIC_ALL,
           "GR": 0x80000000, "GW": GENERIC_WRITE, "GX": 0x20000000, "SD": DELETE, "RC": 0x20000,
           "WD": 0x40000, "WO": 0x80000, "CC": 0x1, "DC": 0x2, "LC": 0x4, "SW": 0x8, "RP": 0x10,
           "WP": 0x20, "DT": 0x40, "LO": 0x80, "CR": 0x100}
READ_BITS = 0x1 | GENERIC_ALL | 0x80000000  # FILE_READ_DATA, or a generic right that includes it

Runner = Callable[[list[str]], subprocess.CompletedProcess]


def _sid_arg(sid: str) -> str:
    return "*" + sid


def grant_command(home: str, till_sid: str) -> list[str]:
    """icacls on the data home: stop inheriting, then exactly the three entries, inherited below."""
    return ["icacls", str(home), "/inheritance:r",
            "/grant:r", f"{_sid_arg(SYSTEM_SID)}:{INHERIT}{FULL}",
            "/grant:r", f"{_sid_arg(ADMINISTRATORS_SID)}:{INHERIT}{FULL}",
            "/grant:r", f"{_sid_arg(till_sid)}:{INHERIT}{MODIFY}",
            "/Q"]


def reset_children_command(home: str) -> list[str]:
    """icacls on what is already inside (an upgrade): every file and folder inherits the home's list again."""
    return ["icacls", str(PureWindowsPath(home) / "*"), "/reset", "/T", "/C", "/Q"]


def save_command(home: str, into: str) -> list[str]:
    """icacls writing the home's access list as SDDL (SIDs, not localised names) into a file."""
    return ["icacls", str(home), "/save", str(into), "/Q"]


def whoami_command() -> list[str]:
    return ["whoami", "/user", "/fo", "csv", "/nh"]


def parse_whoami(output: str) -> tuple[str, str]:
    """`"shop-pc\\cashier","S-1-5-21-..."` -> (account name, SID)."""
    match = re.search(r'"([^"]+)","(S-1-[0-9-]+)"', output or "")
    if not match:
        raise ValueError(f"whoami did not print an account and a SID: {' '.join((output or '').split())[:200]!r}")
    return match.group(1), match.group(2)


def parse_saved_acl(data: bytes) -> str:
    """The SDDL line of an `icacls /save` file (UTF-16, a name line then the SDDL line)."""
    text = data.decode("utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:4] else data.decode()
    for line in text.splitlines():
        if line.strip().startswith("D:"):
            return line.strip()
    raise ValueError("the icacls /save file holds no access list (no line starting with D:)")


@dataclass(frozen=True)
class Ace:
    kind: str      # A allow, D deny
    flags: str     # OICI, ID (inherited), ...
    mask: int
    sid: str


def parse_sddl(sddl: str) -> tuple[str, list[Ace]]:
    """The DACL's flags (P = protected from inheritance, AI) and its entries, SIDs resolved."""
    match = re.match(r"D:([A-Z]*)", sddl)
    if not match:
        raise ValueError(f"not an SDDL access list: {sddl[:80]!r}")
    aces = []
    for kind, flags, rights, _obj, _inh, sid in re.findall(r"\(([A-Z]+);([A-Z]*);([^;]*);([^;]*);([^;]*);([^)]*)\)",
                                                          sddl[match.end():].split("S:")[0]):
        aces.append(Ace(kind, flags, _mask(rights), SDDL_ALIASES.get(sid, sid)))
    return match.group(1), aces


def _mask(rights: str) -> int:
    if rights.lower().startswith("0x"):
        return int(rights, 16)
    mask = 0
    for i in range(0, len(rights), 2):
        mask |= _RIGHTS.get(rights[i:i + 2], 0)
    return mask


def _can_write(mask: int) -> bool:
    return bool(mask & (GENERIC_ALL | GENERIC_WRITE)) or (
        mask & (FILE_WRITE_DATA | FILE_APPEND_DATA) == FILE_WRITE_DATA | FILE_APPEND_DATA and bool(mask & DELETE))


def judge_acl(sddl: str, till_sid: str | None) -> list[str]:
    """What is wrong with the data home's access list; empty when it is as `grant_command` sets it."""
    flags, aces = parse_sddl(sddl)
    problems = []
    if "P" not in flags:
        problems.append("the folder still inherits its permissions from the folder above (every local user can read it)")
    allowed = {SYSTEM_SID, ADMINISTRATORS_SID} | ({till_sid} if till_sid else set())
    for ace in aces:
        if ace.kind == "A" and ace.sid not in allowed and ace.mask & READ_BITS:
            problems.append(f"{ace.sid} can read it")
    for sid, what in ((SYSTEM_SID, "SYSTEM"), (ADMINISTRATORS_SID, "Administrators"), (till_sid, "this account")):
        if sid is None:
            continue
        grants = [a for a in aces if a.kind == "A" and a.sid == sid]
        if not any(_can_write(a.mask) and "OI" in a.flags and "CI" in a.flags for a in grants):
            problems.append(f"{what} ({sid}) cannot change it and everything in it")
    for ace in aces:
        if ace.kind == "D" and ace.sid in allowed:
            problems.append(f"a deny entry for {ace.sid}")
    return problems


# --- running icacls (Windows only) ---------------------------------------------------------------


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def current_account(run: Runner = _run) -> tuple[str, str]:
    """(name, SID) of the Windows account this program runs as."""
    proc = run(whoami_command())
    if proc.returncode != 0:
        raise OSError(f"whoami failed: {' '.join((proc.stderr or proc.stdout or '').split())[:200]}")
    return parse_whoami(proc.stdout)


def secure_home(home: Path, run: Runner = _run, platform: str | None = None) -> str | None:
    """Give the data home its access list (Windows); returns a problem in words, or None when done.

    Never raises: enrollment goes on, and `doctor` keeps failing until the list is right.
    """
    if (platform or sys.platform) != "win32":
        return None
    try:
        _name, sid = current_account(run)
        proc = run(grant_command(str(home), sid))
        if proc.returncode != 0:
            return f"icacls refused: {' '.join((proc.stderr or proc.stdout or '').split())[:300]}"
        if any(Path(home).iterdir()):
            run(reset_children_command(str(home)))  # best effort; judged by doctor on the folder itself
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        return str(exc)
    return None


def inspect_home(home: Path, run: Runner = _run, platform: str | None = None) -> dict:
    """The facts `doctor` judges: {"applies": bool, "account", "sid", "sddl", "problem"}."""
    if (platform or sys.platform) != "win32":
        return {"applies": False}
    facts: dict = {"applies": True, "account": None, "sid": None, "sddl": None, "problem": None}
    try:
        facts["account"], facts["sid"] = current_account(run)
        with tempfile.TemporaryDirectory(prefix="branchsync-acl-") as folder:
            saved = Path(folder) / "acl.txt"
            proc = run(save_command(str(home), str(saved)))
            if proc.returncode != 0 or not saved.exists():
                facts["problem"] = f"icacls /save failed: {' '.join((proc.stderr or proc.stdout or '').split())[:300]}"
                return facts
            facts["sddl"] = parse_saved_acl(saved.read_bytes())
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        facts["problem"] = str(exc)
    return facts
