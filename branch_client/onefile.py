"""The one-file executable runs as two processes; keep them together and clean up after them.

PyInstaller's one-file bootloader unpacks the bundle into a temporary `_MEIxxxxxx` folder,
starts the same executable again as a child that runs Python, waits for it, and deletes the
folder. When something ends only the bootloader (Task Scheduler's ExecutionTimeLimit, a
"End task", taskkill without /T), the child lives on: it keeps holding `sync.lock`, and
nobody deletes the folder. The bootloader does not prevent it: on Windows it starts the
child with plain CreateProcessW (no job object; bootloader/src/pyi_utils_win32.c) and
only forwards console control events; on Linux it forwards signals it can catch, and
SIGKILL is not one of them (PyInstaller issue 4858 reports the orphaned child on Windows).

So the child binds its life to the bootloader's at start-up:
- Windows: a job object with JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE holds the child, and the
  only handle to the job is handed to the bootloader (DuplicateHandle). When the
  bootloader ends, however it ends, Windows closes its handles, the job's last handle
  closes and the child is ended with it;
- Linux: prctl(PR_SET_PDEATHSIG, SIGTERM): the kernel signals the child when its parent dies;
- otherwise, or if either fails: a watchdog thread ends the child once the bootloader is gone.
The sync lock (branch_client.lock) also takes over from an orphan that escaped all three.

And it removes what killed bootloaders left behind: other `_MEI*` folders beside its own
that carry this program's marker file and whose two processes are both gone. Folders of
other PyInstaller programs carry no such marker and are never touched.
"""

import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

from . import processes

MARKER = "branchsync-processes.json"
WATCH_EVERY = 1.0  # seconds between the watchdog's looks at the bootloader

JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x2000
JOB_OBJECT_EXTENDED_LIMIT_INFORMATION = 9
PROCESS_DUP_HANDLE = 0x40
DUPLICATE_SAME_ACCESS = 0x2
PR_SET_PDEATHSIG = 1


def bundle_dir() -> Path | None:
    """This process's unpack folder when it is the one-file executable's Python child, else None."""
    bundle = getattr(sys, "_MEIPASS", None)
    if getattr(sys, "frozen", False) and bundle and Path(bundle).name.startswith("_MEI"):
        return Path(bundle)
    return None


def stale_bundles(temp: Path, own: Path | None, running=processes.is_running) -> list[Path]:
    """Unpack folders in `temp` that this program left and whose bootloader and child are both gone."""
    found = []
    for folder in sorted(temp.glob("_MEI*")):
        if own is not None and folder.resolve() == own.resolve():
            continue
        try:
            record = json.loads((folder / MARKER).read_text(encoding="utf-8"))
            owners = [processes.ProcessId.from_dict(record[key]) for key in ("bootloader", "child")]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # not ours, or still being unpacked
        if not any(running(p) for p in owners):
            found.append(folder)
    return found


def mark(bundle: Path) -> None:
    """Record in our unpack folder which processes it belongs to."""
    record = {"bootloader": processes.identify(os.getppid()).as_dict(), "child": processes.identify().as_dict()}
    (bundle / MARKER).write_text(json.dumps(record), encoding="utf-8")


def keep_with_bootloader() -> None:
    """At start-up of the one-file child: die with the bootloader, mark our folder, remove stale ones."""
    bundle = bundle_dir()
    if bundle is None:
        return
    bootloader = processes.identify(os.getppid())
    bound = False
    try:
        bound = _windows_job() if sys.platform == "win32" else _linux_pdeathsig(bootloader.pid)
    except (OSError, AttributeError, ValueError):
        bound = False
    if not bound:
        threading.Thread(target=_watch, args=(bootloader,), name="bootloader-watch", daemon=True).start()
    try:
        mark(bundle)
        for folder in stale_bundles(bundle.parent, bundle):
            shutil.rmtree(folder, ignore_errors=True)
    except OSError:
        pass  # cleaning up is a courtesy; it never stops a command


def _watch(bootloader: processes.ProcessId) -> None:
    while processes.is_running(bootloader):
        time.sleep(WATCH_EVERY)
    os._exit(1)  # as if ended with it: the lock is freed by the OS, the database rolls back


def _linux_pdeathsig(parent_pid: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        return False
    if os.getppid() != parent_pid:  # the bootloader died before the call: nobody will signal us
        os._exit(1)
    return True


def _windows_job() -> bool:  # pragma: no cover - Windows (tests/exe on the Windows runner)
    import ctypes
    from ctypes import wintypes

    class BasicLimits(ctypes.Structure):
        _fields_ = [("PerProcessUserTimeLimit", ctypes.c_int64), ("PerJobUserTimeLimit", ctypes.c_int64),
                    ("LimitFlags", wintypes.DWORD), ("MinimumWorkingSetSize", ctypes.c_size_t),
                    ("MaximumWorkingSetSize", ctypes.c_size_t), ("ActiveProcessLimit", wintypes.DWORD),
                    ("Affinity", ctypes.c_size_t), ("PriorityClass", wintypes.DWORD),
                    ("SchedulingClass", wintypes.DWORD)]

    class IoCounters(ctypes.Structure):
        _fields_ = [(name, ctypes.c_uint64) for name in ("ReadOperationCount", "WriteOperationCount",
                                                         "OtherOperationCount", "ReadTransferCount",
                                                         "WriteTransferCount", "OtherTransferCount")]

    class ExtendedLimits(ctypes.Structure):
        _fields_ = [("BasicLimitInformation", BasicLimits), ("IoInfo", IoCounters),
                    ("ProcessMemoryLimit", ctypes.c_size_t), ("JobMemoryLimit", ctypes.c_size_t),
                    ("PeakProcessMemoryUsed", ctypes.c_size_t), ("PeakJobMemoryUsed", ctypes.c_size_t)]

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.CreateJobObjectW.restype = wintypes.HANDLE
    kernel32.CreateJobObjectW.argtypes = [ctypes.c_void_p, wintypes.LPCWSTR]
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.OpenProcess.argtypes = [wintypes.DWORD, wintypes.BOOL, wintypes.DWORD]
    kernel32.GetCurrentProcess.restype = wintypes.HANDLE
    kernel32.SetInformationJobObject.argtypes = [wintypes.HANDLE, ctypes.c_int, ctypes.c_void_p, wintypes.DWORD]
    kernel32.AssignProcessToJobObject.argtypes = [wintypes.HANDLE, wintypes.HANDLE]
    kernel32.DuplicateHandle.argtypes = [wintypes.HANDLE, wintypes.HANDLE, wintypes.HANDLE,
                                         ctypes.POINTER(wintypes.HANDLE), wintypes.DWORD, wintypes.BOOL,
                                         wintypes.DWORD]
    kernel32.CloseHandle.argtypes = [wintypes.HANDLE]

    job = kernel32.CreateJobObjectW(None, None)
    if not job:
        return False
    limits = ExtendedLimits()
    limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
    parent = kernel32.OpenProcess(PROCESS_DUP_HANDLE, False, os.getppid())
    try:
        handed = wintypes.HANDLE()
        # Order matters: hand the bootloader its handle BEFORE joining the job, because closing
        # the last handle of a job we are in would end this very process.
        if not (parent and kernel32.SetInformationJobObject(job, JOB_OBJECT_EXTENDED_LIMIT_INFORMATION,
                                                            ctypes.byref(limits), ctypes.sizeof(limits))
                and kernel32.DuplicateHandle(kernel32.GetCurrentProcess(), job, parent, ctypes.byref(handed),
                                             0, False, DUPLICATE_SAME_ACCESS)):
            return False
        return bool(kernel32.AssignProcessToJobObject(job, kernel32.GetCurrentProcess()))
    finally:
        if parent:
            kernel32.CloseHandle(parent)
        kernel32.CloseHandle(job)  # from now on only the bootloader holds the job open
