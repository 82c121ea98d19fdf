"""Processes by identity: is the process that once had this PID still the same one, and is it alive?

A PID alone is not an identity: Windows and Linux hand a freed PID to the next process.
A process is named here by (boot, pid, started): `started` is its creation time as the OS
keeps it (Windows: GetProcessTimes, 100 ns since 1601; Linux: /proc/PID/stat field 22,
clock ticks since boot, hence the boot id beside it). Elsewhere only the PID is known.
"""

import os
import sys
from dataclasses import asdict, dataclass

STILL_ACTIVE = 259
PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
SYNCHRONIZE = 0x00100000
UNKNOWN_START = -1  # the process exists, but this account may not ask when it started


@dataclass(frozen=True)
class ProcessId:
    pid: int
    started: int | None   # None where the OS does not tell
    boot: str = ""

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ProcessId":
        started = data.get("started")
        return cls(int(data["pid"]), int(started) if started is not None else None, str(data.get("boot") or ""))


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""  # Windows: creation times are absolute, no boot id needed


def start_time(pid: int) -> int | None:
    """The process's creation time, or None when no such process is running (or the OS does not say)."""
    if sys.platform == "win32":  # pragma: no cover - Windows
        return _windows_start_time(pid)
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):  # a zombie has ended; only its exit status is left
        return None
    return int(fields[19])  # field 22 of stat; fields[0] is field 3


def identify(pid: int | None = None) -> ProcessId:
    pid = os.getpid() if pid is None else pid
    return ProcessId(pid, start_time(pid), boot_id())


def is_running(process: ProcessId) -> bool:
    """True when the very process `process` names is still running (not merely its PID)."""
    if process.boot and process.boot != boot_id():
        return False  # the PC restarted since
    if os.path.isdir("/proc") or sys.platform == "win32":
        started = start_time(process.pid)
        return started is not None and started in (process.started, UNKNOWN_START) or (
            started is not None and process.started is None)
    try:  # pragma: no cover - neither /proc nor Windows (macOS): the PID is all there is
        os.kill(process.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _windows_start_time(pid: int) -> int | None:  # pragma: no cover - Windows
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.OpenProcess.argtypes = [wintypes.DWORD, wintypes.BOOL, wintypes.DWORD]
    handle = kernel32.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not handle:
        # Access denied means it exists (another account's process); no start time to compare then.
        return UNKNOWN_START if ctypes.get_last_error() == 5 else None
    try:
        code = wintypes.DWORD()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)) or code.value != STILL_ACTIVE:
            return None
        times = [wintypes.FILETIME() for _ in range(4)]
        if not kernel32.GetProcessTimes(handle, *(ctypes.byref(t) for t in times)):
            return None
        return (times[0].dwHighDateTime << 32) | times[0].dwLowDateTime
    finally:
        kernel32.CloseHandle(handle)
